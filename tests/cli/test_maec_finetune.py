"""``maec finetune``: an MAE checkpoint (ours or the official layout) -> a classifier for an image folder
that every other command takes with ``--model``; and ``--accelerator`` where no GPU exists."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cli.main import main
from mae.checkpoints import save_model
from mae.model import MaskedAutoencoder, ViTArch, create_model

TINY = "mae_vit_test_p7_28"
OFFICIAL_LIKE = ViTArch(img_size=28, patch_size=7, in_chans=3, embed_dim=64, depth=2, num_heads=1, num_classes=0,
                        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=1)


def _folder(root, n: int = 12) -> None:
    """Two classes told apart by brightness (dark vs light), RGB, not square."""
    rng = np.random.default_rng(0)
    for cls, base in (("dark", 40), ("light", 200)):
        d = root / "train" / cls
        d.mkdir(parents=True)
        for i in range(n):
            img = np.clip(base + rng.normal(0, 20, (30, 36, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i}.png")


@pytest.mark.parametrize("layout", ["ours", "official"])
def test_finetune_an_mae_checkpoint_on_a_folder_then_evaluate_it(tmp_path, capsys, layout):
    torch.manual_seed(0)
    # the official layout carries no head count: a width whose published rule gives it (64 -> 1 head)
    mae = create_model(TINY, kind="mae") if layout == "ours" else MaskedAutoencoder(OFFICIAL_LIKE)
    if layout == "ours":
        ckpt = tmp_path / "pre.safetensors"
        save_model(mae, ckpt)
    else:  # facebookresearch/mae's release: {"model": state_dict} in a .pth, same key names
        ckpt = tmp_path / "mae_pretrain.pth"
        torch.save({"model": mae.state_dict()}, ckpt)
    _folder(tmp_path / "data")
    out = tmp_path / "ft"
    args = ["finetune", "--init", str(ckpt), "--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "2",
            "--batch-size", "8", "--lr", "5e-3", "--accelerator", "cpu", "--no-bf16", "--no-progress", "--threads", "1"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_top1"] <= 1.0
    assert "fine-tuned" in capsys.readouterr().out
    # the classifier has the folder's 2 classes, the checkpoint's encoder and input config
    capsys.readouterr()
    assert main(["eval", "--model", str(out / "model.safetensors"), "--data", str(tmp_path / "data"), "--json",
                 "--accelerator", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == metrics["test_top1"]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]
    assert main(args) == 0  # a finished run resumes from its last checkpoint: nothing is trained twice
    assert len((out / "log.jsonl").read_text().splitlines()) == 2


def test_max_steps_stops_early_and_bad_input_exits_2(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "pre.safetensors"
    save_model(create_model(TINY, kind="mae"), ckpt)
    _folder(tmp_path / "data")
    out = tmp_path / "ft"
    assert main(["finetune", "--init", str(ckpt), "--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "3",
                 "--batch-size", "4", "--max-steps", "2", "--no-bf16", "--no-progress", "--threads", "1"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1  # 2 steps: inside the first epoch
    capsys.readouterr()
    assert main(["finetune", "--init", str(tmp_path / "nope.pth"), "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.pth" in err[0]
    if not torch.cuda.is_available():
        assert main(["eval", "--model", str(out / "model.safetensors"), "--data", str(tmp_path / "data"),
                     "--accelerator", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
