"""Bad input to ``run_search.py`` and ``maec apply`` ends with one sentence and exit status 2: bad
options, missing data, and files from users (corrupt checkpoints, pickles with code, truncated
``winner.json``, configs for another model). Files are data: nothing in them runs."""
from __future__ import annotations

import json

import pytest
import torch
from searchkit import run_cli

from cli.main import main as maec
from mae.checkpoints import save_model
from mae.model import create_model, describe
from run_search import main
from spaces.config import CompressionConfig
from toolkit.artifacts import save_compressed


def _one_sentence(capsys, prog: str = "run_search.py") -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: ") or prog == "maec", err
    return err


class _RunsCode:
    """A pickle that runs a command when unpickled (what weights-only loading must refuse)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("args, words", [
    (["--budget", "20"], "has no unit: write it with one, e.g. 20ms"),
    (["--budget", "-5ms"], "must be a positive latency"),
    (["--budget", "20ms", "--device", "pixel-99"], "unknown device 'pixel-99'"),
    (["--budget", "20ms", "--timeout", "soon"], "is not a duration"),
    (["--budget", "20ms", "--techniques", "prune,magic"], "magic is not one of"),
    (["--budget", "20ms", "--resume", "--join"], "exclude each other"),
    (["--budget", "20ms", "--limit-val", "0"], "--limit-val must be at least 1"),
    (["--budget", "20ms", "--ray-address", "auto"], "needs --backend ray"),
    (["--budget", "20ms", "--strategy", "allocate", "--sensitivity-images", "0"], "--sensitivity-images must be at least 1"),
    (["--budget", "20ms", "--fidelity", "recovered", "--techniques", "prune,quant"], "needs distill among --techniques"),
    (["--budget", "20ms", "--recover-top", "-1"], "--recover-top must be at least 0"),
    (["--budget", "20ms", "--recover-batch-size", "0"], "--recover-batch-size must be at least 1"),
    pytest.param(["--budget", "20ms", "--accelerator", "cuda"], "torch sees no CUDA GPU",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")),
])
def test_bad_options_exit_2_with_one_sentence(args, words, capsys):
    assert main(args) == 2
    assert words in _one_sentence(capsys)


def test_unparsable_arguments_exit_2_with_one_sentence_and_no_usage_block(capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's own exit, before any settings exist
        main(["--budget", "20ms", "--strategy", "greedy"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'greedy'" in _one_sentence(capsys)


def test_missing_data_exits_2_with_one_sentence(tmp_path, tiny_ckpt, capsys):
    assert main(["--budget", "1ms", "--model", tiny_ckpt, "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "Fashion-MNIST not found" in _one_sentence(capsys)
    assert main(["--budget", "1ms", "--model", tiny_ckpt, "--data", str(tmp_path / "no_folder")]) == 2
    _one_sentence(capsys)


def test_a_real_process_prints_no_traceback():
    r = run_cli(["--budget", "20"], timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == "run_search.py: error: --budget '20' has no unit: write it with one, e.g. 20ms"


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """Broken files a user might hand over."""
    d = tmp_path_factory.mktemp("files")
    torch.manual_seed(0)
    tiny = create_model("mae_vit_test_p7_28")
    (d / "corrupt.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}" + bytes(range(256)) * 3)
    torch.save({"model": _RunsCode(d / "pwned")}, d / "code.pth")
    save_model(tiny, d / "good.safetensors")
    torch.save({"model": tiny.state_dict()}, d / "full.pth")
    (d / "truncated.pth").write_bytes((d / "full.pth").read_bytes()[:3000])
    other = CompressionConfig.identity(describe(create_model("mae_vit_tiny_p4_28")))  # 6 blocks, tiny has 2
    winner = {"schema_version": 1, "config": other.to_dict(), "model": "default", "task": "classify"}
    (d / "winner_other_model.json").write_text(json.dumps(winner))
    (d / "winner_truncated.json").write_text(json.dumps(winner)[:150])
    # a compressed-model folder whose compression.json was swapped for another model's config
    save_compressed(tiny, CompressionConfig.identity(describe(tiny)), d / "swapped")
    (d / "swapped" / "compression.json").write_text(other.to_json())
    return d


@pytest.mark.parametrize("name, words", [
    ("corrupt.safetensors", "safetensors"),
    ("code.pth", "could run code"),
    ("truncated.pth", "truncated"),
    ("winner_truncated.json", "not a checkpoint"),
    ("swapped", "the config has 6 blocks, the model has 2"),
])
def test_bad_model_files_exit_2_and_run_nothing(user_files, name, words, capsys):
    assert main(["--budget", "1ms", "--model", str(user_files / name)]) == 2
    assert words in _one_sentence(capsys)
    assert not (user_files / "pwned").exists()


@pytest.mark.parametrize("config, model, words", [
    ("winner_truncated.json", "good.safetensors", "is not valid JSON"),
    ("winner_other_model.json", "good.safetensors", "the config has 6 blocks, the model has 2"),
    ("winner_other_model.json", "code.pth", "could run code"),
    ("winner_other_model.json", "corrupt.safetensors", "safetensors"),
])
def test_maec_apply_refuses_bad_files_with_one_sentence(user_files, tmp_path, config, model, words, capsys):
    out = tmp_path / "out"
    assert maec(["apply", str(user_files / config), "--model", str(user_files / model), "--out", str(out)]) == 2
    assert words in _one_sentence(capsys, "maec")
    assert not out.exists() and not (user_files / "pwned").exists()


def test_ray_backend_without_ray_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    assert main(["--budget", "20ms", "--backend", "ray"]) == 2
    assert "pip install 'mae-compress-search[ray]'" in _one_sentence(capsys)


def test_a_teacher_at_chance_level_is_refused_before_any_trial(tiny_ckpt, tmp_path, capsys):
    # the test model has random weights: about 10% top-1 on Fashion-MNIST's 10 classes
    assert main(["--budget", "1ms", "--model", tiny_ckpt, "--limit-val", "128", "--cheap-val-images", "64",
                 "--results-dir", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "about chance for 10 classes" in err and "fine-tune it on these images first" in err
    assert len(err.splitlines()) == 1 and not any(tmp_path.iterdir())  # nothing written
