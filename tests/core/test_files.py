"""The one atomic-write helper (core/files.py)."""
from __future__ import annotations

import threading

import pytest

from core.files import write_atomic, write_text_atomic


def test_writes_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "winner.json"
    write_text_atomic(target, "first\n")
    write_text_atomic(target, "second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["winner.json"]


def test_failed_writer_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, broken)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_concurrent_writers_use_their_own_temporary(tmp_path):
    """Workers joined on one study write winner.json at the same moment: each reader sees one whole
    version (a shared temporary name would let one writer rename the other's half-written file)."""
    target = tmp_path / "winner.json"
    texts = [f"{i}" * 20_000 for i in range(8)]
    seen_tmp: set[str] = set()

    def writer(text: str) -> None:
        def write(tmp):
            seen_tmp.add(tmp.name)
            tmp.write_text(text)
        write_atomic(target, write)

    threads = [threading.Thread(target=writer, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen_tmp) == len(texts)
    assert target.read_text() in texts
