"""The latency commands of ``maec``: output, JSON, and one-sentence errors with exit status 2."""
from __future__ import annotations

import ast
import csv
import json
import subprocess
import sys

import pytest

from cli.main import main
from evaluators.latency.fit.calibrate import read_measure_csv
from evaluators.latency.predict.predictor import LatencyPredictor
from mae.model import create_model, describe
from spaces.config import BlockConfig, CompressionConfig


def test_devices_lists_profiles_with_their_figures(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "rpi4-a72-ort-1t (default)" in out and "held-out MAPE" in out and "ncnn" in out
    four = out[out.index("rpi5-a76-ort-4t:"):].split("\n")[:3]
    assert "confidence low" in four[1] and "its thread model on the A76's own 2-3-thread rows" in four[2]
    assert out.count("board runs of the reference kit: ") == 4  # the Pi 4 / Pi 5 profiles, runs or how to make one
    assert main(["devices", "-v"]) == 0
    assert "thread model, Google Pixel 4 A76 @ 2.32 GHz, tflite, 3 threads" in capsys.readouterr().out
    assert main(["devices", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(d["default"] for d in data) == 1 and all("provenance" in d for d in data)


def test_inspect_prints_latency_and_breakdown(capsys, tmp_path):
    assert main(["inspect", "--model", "mae_vit_test_p7_28", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    shape = describe(create_model("mae_vit_test_p7_28"), name="mae_vit_test_p7_28")
    assert data["latency_ms"] == pytest.approx(LatencyPredictor().predict_ms(shape), abs=1e-3)
    assert {"blocks.0.attn.qkv", "head"} <= {op["name"] for op in data["ops"]}
    cfg = CompressionConfig(blocks=(BlockConfig(heads=1, mlp_hidden=32), BlockConfig(heads=0, mlp_hidden=0)))
    (tmp_path / "c.json").write_text(cfg.to_json())
    assert main(["inspect", str(tmp_path / "c.json"), "--model", "mae_vit_test_p7_28", "--device", "rpi5-a76-ort-4t"]) == 0
    out = capsys.readouterr().out
    assert "rpi5-a76-ort-4t" in out and "predicted latency" in out and "blocks.1.attn" not in out


def test_inspect_a_full_mae_prices_reconstruction(capsys):
    assert main(["inspect", "--model", "mae_vit_test_p7_28", "--kind", "mae", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task"] == "reconstruct" and any(op["name"] == "decoder_pred" for op in data["ops"])


@pytest.mark.parametrize("argv, message", [
    (["inspect", "--model", "mae_vit_test_p7_28", "--device", "nope"], "unknown device 'nope'"),
    (["inspect", "CFG", "--model", "mae_vit_test_p7_28"], "heads"),
    (["calibrate", "missing.csv", "--name", "x"], "does not exist"),
    (["calibrate", "BAD", "--name", "x"], "not a `maec measure` CSV"),
    (["measure"], "exactly one of"),
    (["measure", "--out", "x.csv", "--threads", "0"], "at least 1"),
    (["measure", "--out", "/proc/nowhere/x.csv"], "--out: cannot write to /proc/nowhere"),
    (["measure", "--export-kit", "/proc/kit"], "--export-kit: cannot write to /proc/kit"),
])
def test_bad_input_is_one_sentence_and_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "CFG").write_text(CompressionConfig(blocks=(BlockConfig(heads=9, mlp_hidden=1),
                                                            BlockConfig(heads=1, mlp_hidden=1))).to_json())
    (tmp_path / "BAD").write_text("a,b\n1,2\n")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_measure_calibrate_and_export_kit_end_to_end(capsys, tmp_path):
    """A quick sweep timed here, calibrated into a profile; the kit's runner needs numpy + onnxruntime only."""
    out = tmp_path / "host.csv"
    assert main(["measure", "--out", str(out), "--sweep", "quick", "--what", "ops", "--repeats", "3",
                 "--warmup", "1", "--quiet"]) == 0
    samples, meta = read_measure_csv(out)
    assert len(samples) == 7 and meta["threads"] == "1" and meta["runtime_version"]
    assert samples[0].meta["bench"] == "call_v784" and samples[0].terms == ()  # the per-call row, no operator
    assert main(["calibrate", str(out), "--name", "host-test", "--out", str(tmp_path / "p.json")]) == 0
    assert "host-test" in capsys.readouterr().out
    assert LatencyPredictor(str(tmp_path / "p.json")).device.name == "host-test"

    kit = tmp_path / "kit"
    assert main(["measure", "--export-kit", str(kit), "--sweep", "quick", "--what", "models", "--quiet"]) == 0
    runner = kit / "run_kit.py"
    imported = {n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(runner.read_text()))
                if isinstance(n, ast.Import)} | {n.module.split(".")[0] for n in ast.walk(ast.parse(runner.read_text()))
                                                   if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "argparse", "csv", "datetime", "json", "os", "platform", "sys", "time",
                        "pathlib", "numpy", "onnxruntime"}
    res = subprocess.run([sys.executable, str(runner), "--repeats", "2", "--warmup", "0", "--rounds", "2",
                          "--min-seconds", "0.05", "--quiet", "--out", str(tmp_path / "k.csv")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "[pass" not in res.stderr  # --quiet: no progress lines
    bad = subprocess.run([sys.executable, str(runner), "--min-seconds", "-1"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60, check=False)
    assert bad.returncode == 2 and "--min-seconds" in bad.stderr
    kit_samples, _ = read_measure_csv(tmp_path / "k.csv")
    assert [s.group for s in kit_samples] == ["model"]
    # two passes over the kit: the row keeps the lower pass median (interference only adds time)
    with open(tmp_path / "k.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    passes = [float(v) for v in row["round_ms"].split(";")]
    assert row["rounds"] == "2" and len(passes) == 2 and float(row["latency_ms"]) == min(passes)
    assert int(row["repeats"]) >= 4 and float(row["p10_ms"]) <= float(row["p90_ms"])
