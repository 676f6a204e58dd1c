import json

import torch
from safetensors.torch import load_file

from mae.schedule import cosine_with_warmup
from mae.train import main

TINY = ["--preset", "mae_vit_test_p7_28", "--limit-train", "512", "--batch-size", "128", "--no-progress",
        "--threads", "1"]


def test_schedule_warms_up_then_decays_to_zero():
    lrs = [cosine_with_warmup(s, 100, 10) for s in range(101)]
    assert lrs[9] == 1.0 and lrs[0] == 0.1
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[100] == 0.0


def test_pretrain_then_finetune_writes_logs_and_weights(tmp_path):
    assert main(["pretrain", "--out", str(tmp_path / "pre"), "--epochs", "1", *TINY]) == 0
    log = [json.loads(line) for line in (tmp_path / "pre" / "log.jsonl").read_text().splitlines()]
    assert log[0]["epoch"] == 1 and log[0]["val_masked_mse"] > 0
    # checkpoints are written through core.files.write_atomic: no temporary file is left behind
    assert sorted(p.name for p in (tmp_path / "pre").iterdir()) == [
        "last.pt", "log.jsonl", "metrics.json", "model.safetensors", "settings.json"]
    init = str(tmp_path / "pre" / "model.safetensors")
    assert main(["finetune", "--out", str(tmp_path / "ft"), "--epochs", "1", "--init", init, *TINY]) == 0
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert 0.0 <= metrics["test_top1"] <= 1.0 and metrics["init"] == init


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    args = ["pretrain", "--epochs", "2", *TINY]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    assert main([*args, "--out", str(tmp_path / "split"), "--stop-after", "1"]) == 0
    assert not (tmp_path / "split" / "model.safetensors").exists()
    assert main([*args, "--out", str(tmp_path / "split")]) == 0
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_finetune_from_a_mismatched_checkpoint_exits_2(tmp_path, capsys):
    main(["pretrain", "--out", str(tmp_path / "pre"), "--epochs", "1", *TINY])
    code = main(["finetune", "--out", str(tmp_path / "ft"), "--epochs", "1", "--preset", "mae_vit_tiny_p4_28",
                 "--init", str(tmp_path / "pre" / "model.safetensors"), "--limit-train", "8", "--no-progress"])
    assert code == 2 and "does not fit this model's encoder" in capsys.readouterr().err
