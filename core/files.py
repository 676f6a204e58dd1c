"""Writing files so that nothing half-written is ever left behind.

One helper for every writer in the project: the content goes to a temporary file with a unique name
in the target's folder (process id + random suffix, so several processes writing the same file --
workers joined on one study writing ``winner.json`` -- never share a temporary; created by the writer
itself, so the file gets the usual permissions, which ``mkstemp``'s 0600 would not), then an atomic
``os.replace`` puts it in place. A reader sees the old file or the new one, never a mix.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` to produce the file, then rename it onto ``path``.

    ``write`` may be any writer that takes a path (``torch.save``, ``safetensors.save_file``,
    ``DataFrame.to_parquet``, a plotly ``write_html``). On failure the temporary file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda tmp: tmp.write_text(text))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (checkpoints can be GBs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
