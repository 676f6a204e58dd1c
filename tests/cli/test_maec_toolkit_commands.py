import json
import subprocess
import sys

import pytest

from cli.main import main
from mae.model import create_model, describe
from spaces.config import CompressionConfig


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_example_config_writes_a_valid_half_preset(tiny_ckpt, tmp_path):
    out = tmp_path / "half.json"
    assert main(["example-config", "--model", tiny_ckpt, "--preset", "half", "--out", str(out)]) == 0
    cfg = CompressionConfig.from_json(out.read_text())
    assert [b.heads for b in cfg.blocks] == [1, 1] and [b.mlp_hidden for b in cfg.blocks] == [64, 64]
    assert {b.weight_bits["fc1"] for b in cfg.blocks} == {8}


def test_apply_writes_model_onnx_and_report(tiny_ckpt, tmp_path, capsys, ort_int8_exact):
    cfg = tmp_path / "half.json"
    main(["example-config", "--model", tiny_ckpt, "--out", str(cfg)])
    out = tmp_path / "out"
    assert main(["apply", str(cfg), "--model", tiny_ckpt, "--out", str(out), "--recover-steps", "3",
                 "--limit", "64", "--no-bf16"]) == 0
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "compression.json", "model.onnx",
                                              "original.onnx", "report.json"}
    report = json.loads((out / "report.json").read_text())
    assert report["params"]["compressed"] < report["params"]["original"]
    assert report["macs"]["compressed"] < report["macs"]["original"]
    assert report["onnx_latency_ms"]["compressed"]["median_ms"] > 0 and report["compression"]["recovery"]["steps"] == 3
    if ort_int8_exact:  # else ORT's int8 kernel saturates on this CPU (tests/conftest.py)
        assert abs(report["after"]["onnx_top1"] - report["after"]["top1"]) <= 0.03  # 64 images: 2 may flip
    # the folder reloads and scores the same as the report says
    capsys.readouterr()
    assert main(["eval", "--model", str(out), "--limit", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == report["after"]["top1"]
    # an existing folder is not overwritten silently
    assert main(["apply", str(cfg), "--model", tiny_ckpt, "--out", str(out)]) == 2
    assert "exists" in _one_error_line(capsys)


def test_tokens_preset_merges_in_every_block_and_apply_reloads_it_exactly(tiny_ckpt, tmp_path, capsys):
    cfg_path = tmp_path / "tokens.json"
    assert main(["example-config", "--model", tiny_ckpt, "--preset", "tokens", "--out", str(cfg_path)]) == 0
    cfg = CompressionConfig.from_json(cfg_path.read_text())
    assert [b.merge_tokens for b in cfg.blocks] == [2, 2]  # 1/8 of 16, then of 14 patch tokens
    assert cfg.is_identity(describe(create_model("mae_vit_test_p7_28"))) is False
    assert all(b.heads == 2 and b.weight_bits["fc1"] == 32 for b in cfg.blocks)  # merging only
    out = tmp_path / "out"
    assert main(["apply", str(cfg_path), "--model", tiny_ckpt, "--out", str(out), "--recover-steps", "2",
                 "--limit", "64", "--no-bf16"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["compression"]["merge_tokens"] == [2, 2]
    assert abs(report["after"]["onnx_top1"] - report["after"]["top1"]) <= 1 / 64  # the ONNX graph merges too
    capsys.readouterr()
    assert main(["eval", "--model", str(out), "--limit", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == report["after"]["top1"]


@pytest.mark.parametrize("content, message", [("{", "is not valid JSON"),
                                              ('{"schema_version": 1, "blocks": []}', "blocks: expected a non-empty")])
def test_bad_config_files_exit_2_with_one_sentence(tiny_ckpt, tmp_path, capsys, content, message):
    cfg = tmp_path / "bad.json"
    cfg.write_text(content)
    assert main(["apply", str(cfg), "--model", tiny_ckpt, "--out", str(tmp_path / "o")]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_config_for_another_model_exits_2(tiny_ckpt, tmp_path, capsys):
    big = CompressionConfig.identity(describe(create_model("mae_vit_tiny_p4_28")))
    cfg = tmp_path / "big.json"
    cfg.write_text(big.to_json())
    assert main(["apply", str(cfg), "--model", tiny_ckpt, "--out", str(tmp_path / "o")]) == 2
    assert "the config has 6 blocks, the model has 2" in _one_error_line(capsys)


def test_missing_model_and_bad_limit_exit_2(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "none.safetensors")]) == 2
    _one_error_line(capsys)
    assert main(["eval", "--model", "timm:not_a_model_name"]) == 2
    _one_error_line(capsys)


def test_console_script_usage_error_is_exit_2():
    r = subprocess.run([sys.executable, "-m", "cli.main", "eval", "--split", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr
