"""Loaders for official MAE checkpoints, timm ViTs and our own files (mae/loaders.py).

Seeds and one thread come from tests/conftest.py. Every model is tiny (img 32 or 28, depth <= 2)
so the file runs in seconds on 2 CPU cores. Outputs are compared with ``torch.equal``: our blocks
are timm's ``Block`` class, so both sides run the same attention kernel, and adding the position
embedding before or after concatenating the class token is the same element-wise sum.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle

import pytest
import timm
import torch
from safetensors.torch import save_file

from mae import loaders
from mae.checkpoints import CheckpointError, save_model
from mae.loaders import (
    default_num_heads,
    from_timm,
    infer_arch,
    load_checkpoint,
    load_official_mae,
    load_timm,
    load_timm_state_dict,
)
from mae.model import MAEClassifier, MaskedAutoencoder, ViTArch

SMALL = {"pretrained": False, "img_size": 32, "patch_size": 8, "depth": 2}


def _imgs(n: int = 2, c: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(1))


def _save(sd: dict, path, fmt: str) -> None:
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)


def _error(fn, *args, **kwargs) -> str:
    """The CheckpointError message of ``fn(*args)``; it must be one line."""
    with pytest.raises(CheckpointError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------------
# timm


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
@pytest.mark.parametrize("name, kwargs, pool, classes", [
    ("vit_tiny_patch16_224", {"num_classes": 5}, "token", 5),
    ("vit_tiny_patch16_224", {"num_classes": 5, "global_pool": "avg"}, "avg", 5),
    ("vit_tiny_patch16_224", {"num_classes": 5, "no_embed_class": True}, "token", 5),
    ("vit_tiny_patch16_224", {"num_classes": 3, "qkv_bias": False}, "token", 3),
    ("vit_base_patch16_224.mae", {"depth": 1}, "token", 0),  # the .mae cfg: num_classes=0, token pool
])
def test_timm_state_dict_gives_identical_outputs(tmp_path, fmt, name, kwargs, pool, classes):
    ref = timm.create_model(name, **{**SMALL, **kwargs}).eval()
    path = tmp_path / f"timm.{fmt}"
    _save(ref.state_dict(), path, fmt)

    ours = load_timm_state_dict(path)
    assert isinstance(ours, MAEClassifier) and not ours.training
    assert (ours.arch.global_pool, ours.arch.num_classes) == (pool, classes)
    assert ours.arch.num_heads == ref.blocks[0].attn.num_heads
    assert (ours.arch.img_size, ours.arch.patch_size, ours.arch.depth) == (32, 8, kwargs.get("depth", 2))
    with torch.no_grad():
        assert torch.equal(ours(_imgs()), ref(_imgs()))
    # the generic entry point tells the layout by keys alone
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path)(_imgs()), ref(_imgs()))


def test_timm_mae_variant_has_timm_defaults():
    ref = timm.create_model("vit_base_patch16_224.mae", **SMALL, embed_dim=192, num_heads=3)
    assert ref.num_classes == 0 and ref.global_pool == "token"
    ours = from_timm(ref.eval())
    assert (ours.arch.num_classes, ours.arch.global_pool) == (0, "token")
    with torch.no_grad():
        assert torch.equal(ours(_imgs()), ref(_imgs()))  # [N, 192] class-token features


def test_load_timm_name_matches_timm():
    torch.manual_seed(3)
    ours = load_timm("vit_tiny_patch16_224")
    torch.manual_seed(3)  # same seed -> timm draws the same random weights
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    assert not ours.training and ours.arch.layer_norm_eps == 1e-6
    x = _imgs(1, 3, 224)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_from_timm_uses_heads_and_eps_of_the_module():
    ref = timm.create_model("vit_tiny_patch16_224", **SMALL, num_heads=4, num_classes=2).eval()
    ours = from_timm(ref)
    assert ours.arch.num_heads == 4  # a state dict alone would give 192 // 64 = 3
    with torch.no_grad():
        assert torch.equal(ours(_imgs()), ref(_imgs()))


@pytest.mark.parametrize("kwargs, feature", [
    ({"init_values": 1e-5}, "layer scale"),
    ({"qk_norm": True}, "qk_norm"),
    ({"reg_tokens": 2}, "register tokens"),
    ({"class_token": False, "global_pool": "avg"}, "no class token"),
    ({"global_pool": "avg", "fc_norm": False}, "final norm placed against its pooling"),
])
def test_unsupported_timm_variants_are_named(tmp_path, kwargs, feature):
    ref = timm.create_model("vit_tiny_patch16_224", **SMALL, **kwargs)
    assert feature in _error(from_timm, ref, source="timm test model")
    if "fc_norm" in kwargs:
        return  # its weights look like token pooling: only the module can tell
    path = tmp_path / "variant.pth"
    torch.save(ref.state_dict(), path)
    msg = _error(load_timm_state_dict, path)
    assert str(path) in msg and feature in msg


def test_unknown_timm_name_and_non_vit():
    assert "timm:no_such_model" in _error(load_timm, "no_such_model")
    assert "not timm's VisionTransformer" in _error(load_timm, "resnet18")


# ---------------------------------------------------------------------------------------------
# facebookresearch/mae layouts, built from our own modules (same key names)

MAE_ARCH = ViTArch(img_size=28, patch_size=7, in_chans=1, embed_dim=64, depth=2, num_heads=1,
                   num_classes=0, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=1)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_official_pretrain_checkpoint_with_decoder(tmp_path, fmt):
    ref = MaskedAutoencoder(MAE_ARCH).eval()
    path = tmp_path / f"mae_pretrain.{fmt}"
    if fmt == "pth":  # as MAE's misc.save_model writes it, argparse args included
        torch.save({"model": ref.state_dict(), "epoch": 3, "args": argparse.Namespace(lr=1e-3)}, path)
    else:
        _save(ref.state_dict(), path, fmt)

    for ours in (load_official_mae(path), load_checkpoint(path)):
        assert isinstance(ours, MaskedAutoencoder) and not ours.training
        assert ours.arch == MAE_ARCH
        x = _imgs(2, 1, 28)
        with torch.no_grad():
            a = ours(x, 0.75, torch.Generator().manual_seed(5))
            b = ref(x, 0.75, torch.Generator().manual_seed(5))
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))  # loss, pred [N, L, p*p*C], mask


@pytest.mark.parametrize("pool", ["avg", "token"])
def test_official_finetuned_checkpoint(tmp_path, pool):
    arch = MAE_ARCH.with_(num_classes=7, global_pool=pool)
    ref = MAEClassifier(arch).eval()
    sd = ref.state_dict()
    # MAE's models_vit.py with global_pool deletes `norm` and adds `fc_norm`; token pooling keeps norm
    assert ("norm.weight" in sd, "fc_norm.weight" in sd) == ((False, True) if pool == "avg" else (True, False))
    path = tmp_path / "mae_finetuned.pth"
    torch.save({"model": sd}, path)
    ours = load_official_mae(path)
    assert isinstance(ours, MAEClassifier)
    encoder_fields = [f for f in arch.to_dict() if not f.startswith("decoder_")]
    assert all(getattr(ours.arch, f) == getattr(arch, f) for f in encoder_fields)
    with torch.no_grad():
        assert torch.equal(ours(_imgs(3, 1, 28)), ref(_imgs(3, 1, 28)))


def test_encoder_only_pretrain_release_becomes_feature_extractor(tmp_path):
    mae = MaskedAutoencoder(MAE_ARCH)
    sd = {k: v for k, v in mae.state_dict().items() if not k.startswith(("decoder_", "mask_token"))}
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": sd}, path)
    ours = load_official_mae(path)
    assert isinstance(ours, MAEClassifier)
    assert (ours.arch.num_classes, ours.arch.global_pool) == (0, "token")  # as timm's *.mae models
    assert all(torch.equal(v, sd[k]) for k, v in ours.state_dict().items())


def test_heads_that_shapes_cannot_tell_must_be_given(tmp_path):
    arch = MAE_ARCH.with_(embed_dim=32, num_heads=2, decoder_embed_dim=16, decoder_num_heads=2)
    ref = MaskedAutoencoder(arch)
    path = tmp_path / "odd_width.pth"
    torch.save({"model": ref.state_dict()}, path)
    assert "num_heads=" in _error(load_official_mae, path)
    assert "decoder_num_heads=" in _error(load_official_mae, path, num_heads=2)
    assert load_official_mae(path, num_heads=2, decoder_num_heads=2).arch == arch


def test_default_head_rule_and_mlp_ratio():
    assert [default_num_heads(w) for w in (192, 384, 768, 1024, 1280, 1408)] == [3, 6, 12, 16, 16, 16]
    assert default_num_heads(32) is None
    # the ratio must survive timm's int(dim * ratio), e.g. ViT-g: 1408 wide, 6144 hidden
    for width, hidden in [(1408, 6144), (768, 3072), (192, 768), (100, 333), (1664, 8192)]:
        assert int(width * loaders._mlp_ratio(hidden, width)) == hidden
    sd = MAEClassifier(MAE_ARCH.with_(depth=1)).state_dict()
    sd["blocks.0.mlp.fc1.weight"] = torch.zeros(333, 64)
    assert int(64 * infer_arch(sd).mlp_ratio) == 333


# ---------------------------------------------------------------------------------------------
# our own files and the default


def test_load_checkpoint_own_file(tmp_path):
    ref = MAEClassifier(MAE_ARCH.with_(num_classes=4))
    path = tmp_path / "own.safetensors"
    save_model(ref, path, extra={"acc": 0.5})
    ours = load_checkpoint(path)
    assert not ours.training and ours.arch == ref.arch
    with torch.no_grad():
        assert torch.equal(ours(_imgs(2, 1, 28)), ref.eval()(_imgs(2, 1, 28)))


# ---------------------------------------------------------------------------------------------
# bad files: one sentence naming the file, nothing executed


class _Payload:
    """Unpickling this would create a directory: the proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    """A folder of broken checkpoints (written once) and the marker a payload would create."""
    tmp_path = tmp_path_factory.mktemp("bad")
    good_pth, good_st = tmp_path / "good.pth", tmp_path / "good.safetensors"
    sd = MAEClassifier(MAE_ARCH).state_dict()
    torch.save({"model": sd}, good_pth)
    save_file(sd, str(good_st))
    marker = str(tmp_path / "code_ran")
    files = {
        "truncated.pth": good_pth.read_bytes()[: good_pth.stat().st_size // 2],
        "truncated.safetensors": good_st.read_bytes()[: good_st.stat().st_size // 2],
        "garbage.pth": os.urandom(4096),
        "garbage.safetensors": os.urandom(4096),
        "garbage.bin": b"\x00" * 100,
        "empty.pth": b"",
        "code.pkl": pickle.dumps({"model": _Payload(marker)}),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"model": _Payload(marker)}, tmp_path / "code.pth")
    torch.save(timm.create_model("vit_tiny_patch16_224", **SMALL), tmp_path / "whole_module.pth")
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)},
               tmp_path / "resnet_like.pth")
    torch.save([torch.zeros(2)], tmp_path / "a_list.pth")
    wrong = dict(sd)
    wrong["blocks.1.mlp.fc1.weight"] = torch.zeros(100, 64)
    torch.save({"model": wrong}, tmp_path / "mismatched.pth")
    short = {k: v for k, v in sd.items() if k != "blocks.1.attn.proj.weight"}
    torch.save(short, tmp_path / "missing_key.pth")
    save_file(sd, str(tmp_path / "own_mismatched.safetensors"), metadata={
        "format": "mae-compress-search", "kind": "classifier",
        "arch": json.dumps(MAE_ARCH.with_(depth=3).to_dict())})
    return tmp_path, marker


@pytest.mark.parametrize("name, words", [
    ("truncated.pth", "truncated"),
    ("truncated.safetensors", "safetensors"),
    ("garbage.pth", "truncated or not a checkpoint"),
    ("garbage.safetensors", "safetensors"),
    ("garbage.bin", "truncated or not a checkpoint"),
    ("empty.pth", "truncated or not a checkpoint"),
    ("code.pkl", "truncated or not a checkpoint"),  # a bare pickle is no torch checkpoint
    ("code.pth", "could run code"),
    ("whole_module.pth", "VisionTransformer"),
    ("resnet_like.pth", "not a ViT checkpoint"),
    ("a_list.pth", "not a state dict"),
    ("mismatched.pth", "blocks.1.mlp.fc1.weight has shape (100, 64)"),
    ("missing_key.pth", "lacks blocks.1.attn.proj.weight"),
    ("own_mismatched.safetensors",
     "does not match its recorded architecture: it lacks blocks.2.norm1.weight (and 11 more problems)"),
    ("does_not_exist.pth", "does not exist"),
])
def test_bad_files_raise_one_sentence(bad_dir, name, words):
    folder, marker = bad_dir
    path = folder / name
    for loader in (load_checkpoint, load_official_mae, load_timm_state_dict):
        if name.startswith("own_") and loader is not load_checkpoint:
            continue  # only load_checkpoint reads our metadata
        msg = _error(loader, path)
        assert str(path) in msg and words in msg, msg
    assert not os.path.exists(marker)
