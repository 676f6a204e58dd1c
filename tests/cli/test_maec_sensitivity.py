"""``maec sensitivity``: builds or reads the cached table, writes CSV + heat map, exits 2 on bad input."""
from __future__ import annotations

import os

import pytest

from cli.main import main
from evaluators.sensitivity import SensitivityTable
from mae.data import DEFAULT_FASHION_MNIST_DIR


def _data_args() -> list[str]:
    return ["--data-dir", os.environ.get("MAE_FASHION_MNIST_DIR", str(DEFAULT_FASHION_MNIST_DIR))]


def test_writes_csv_and_heatmap_then_reads_the_cache(tiny_ckpt, tmp_path, capsys):
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = ["sensitivity", "--model", tiny_ckpt, "--images", "4", "--seed", "1", "--cache-dir", str(cache),
            "--out", str(out), *_data_args()]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "b1    heads" in printed and "built in" in printed
    csvs = list(out.glob("*.csv"))
    assert len(csvs) == 1 and csvs[0].with_suffix(".html").is_file() and csvs[0].with_suffix(".json").is_file()
    assert (cache / csvs[0].name).is_file()  # the cache entry the search reuses
    table = SensitivityTable.from_csv(csvs[0])
    assert table.task == "classify" and table.blocks() == ["b0", "b1"] and table.meta["images"] == 4
    assert main(args + ["--quiet"]) == 0
    assert "read from the cache" in capsys.readouterr().out
    assert SensitivityTable.from_csv(csvs[0]) == table


@pytest.mark.parametrize("extra, message", [
    (["--images", "0"], "--images must be at least 1"),
    (["--seed", "-1"], "--seed must be 0 or more"),
    (["--data", "/nonexistent/folder"], "/nonexistent/folder"),
])
def test_bad_input_is_one_sentence_and_exit_2(tiny_ckpt, tmp_path, capsys, extra, message):
    assert main(["sensitivity", "--model", tiny_ckpt, "--cache-dir", str(tmp_path), *_data_args(), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and message in err, err
