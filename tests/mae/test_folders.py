"""Image folders streamed from disk (mae.folders) and the model's input config (mae.model.ViTArch)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from imagekit import write_image_folder
from PIL import Image

from mae.data import IMAGENET_MEAN, IMAGENET_STD, iterate_batches, load_dataset, load_image_folder
from mae.folders import FolderImages, folder_batches
from mae.model import ViTArch, create_model


def _striped(path, w: int, h: int) -> None:
    """An RGB image ``w`` x ``h``: left third red, middle green, right third blue (0 or 255 only)."""
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 3, 0] = 255
    a[:, w // 3 : 2 * w // 3, 1] = 255
    a[:, 2 * w // 3 :, 2] = 255
    Image.fromarray(a).save(path)


def test_a_wide_image_is_resized_on_its_short_side_and_centre_cropped(tmp_path):
    _striped(tmp_path / "wide.png", 90, 30)
    img = FolderImages((str(tmp_path / "wide.png"),), img_size=30, in_chans=3, crop_pct=1.0).decode(0)
    assert img.shape == (3, 30, 30) and img.dtype == torch.uint8
    # the centre crop keeps the middle third (green); squashing would have kept all three stripes
    assert img[1].float().mean() > 250 and img[0].float().mean() < 5 and img[2].float().mean() < 5
    cropped = FolderImages((str(tmp_path / "wide.png"),), img_size=24, in_chans=1, crop_pct=0.8).decode(0)
    assert cropped.shape == (1, 24, 24)  # shorter side to 24 / 0.8 = 30, then the central 24 x 24


def test_batches_are_the_same_with_and_without_workers(tmp_path):
    write_image_folder(tmp_path, {"": 12}, classes=("a", "b"), size=(20, 26))
    split = load_image_folder(tmp_path, img_size=16, in_chans=3)["train"]
    assert isinstance(split.images, FolderImages) and split.images.shape == (len(split), 3, 16, 16)
    order = [torch.tensor([3, 1, 4]), torch.tensor([0, 2]), torch.tensor([5, 6, 7])]
    serial = list(folder_batches(split.images, order, workers=0))
    parallel = list(folder_batches(split.images, order, workers=1))
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
    assert torch.equal(serial[0], split.images[torch.tensor([3, 1, 4])])
    # iterate_batches over a folder: same order and normalisation as for a tensor holding those images
    in_memory = type(split)(split.images[torch.arange(len(split))], split.labels, split.classes, split.mean, split.std)
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for (xa, ya), (xb, yb) in zip(iterate_batches(split, 5, shuffle=True, generator=gen_a, augment_images=True),
                                  iterate_batches(in_memory, 5, shuffle=True, generator=gen_b, augment_images=True),
                                  strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_normalisation_comes_from_the_model(tmp_path):
    _striped(tmp_path / "x.png", 32, 32)
    (tmp_path / "c").mkdir()
    for i in range(10):
        _striped(tmp_path / "c" / f"{i}.png", 32, 32)
    rgb = ViTArch(img_size=16, patch_size=8, in_chans=3, embed_dim=32, depth=1, num_heads=2)
    assert rgb.input_mean == IMAGENET_MEAN and rgb.input_std == IMAGENET_STD
    splits = load_dataset(str(tmp_path), data_dir=None, **rgb.data_kwargs())
    assert splits["train"].mean == IMAGENET_MEAN
    x, _ = next(iterate_batches(splits["train"], 2, shuffle=False))
    red = x[0, 0, :, 0]  # left column: red 255 -> (1 - 0.485) / 0.229
    assert torch.allclose(red, torch.full_like(red, (1 - 0.485) / 0.229), atol=1e-5)
    gray = create_model("mae_vit_test_p7_28").arch
    assert gray.input_mean == (0.2860,) and gray.input_crop_pct == 1.0
    own = rgb.with_(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), crop_pct=0.9)
    again = ViTArch.from_dict(own.to_dict() | {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})  # as JSON gives
    assert again == own and again.input_crop_pct == 0.9 and hash(again) == hash(own)


def test_timm_models_bring_their_input_config():
    timm = pytest.importorskip("timm")
    from mae.loaders import from_timm

    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, img_size=32)
    arch = from_timm(m).arch
    assert arch.input_mean == tuple(m.pretrained_cfg["mean"]) and arch.input_crop_pct == m.pretrained_cfg["crop_pct"]


def test_official_mae_presets_have_the_published_shapes():
    from mae.model import MODEL_PRESETS

    base, large = MODEL_PRESETS["mae_vit_base_patch16"], MODEL_PRESETS["mae_vit_large_patch16"]
    assert (base.embed_dim, base.depth, base.num_heads, base.num_patches) == (768, 12, 12, 196)
    assert (large.embed_dim, large.depth, large.num_heads, large.decoder_embed_dim) == (1024, 24, 16, 512)
    assert base.input_mean == IMAGENET_MEAN and base.input_crop_pct == 0.875


def test_create_model_with_a_checkpoint_checks_the_preset(tmp_path):
    from mae.checkpoints import CheckpointError, save_model
    from mae.registry import create_model as create_with_weights

    torch.manual_seed(0)
    mae = create_model("mae_vit_test_p7_28", kind="mae")
    save_model(mae, tmp_path / "ours.safetensors")
    again = create_with_weights("mae_vit_test_p7_28", checkpoint=str(tmp_path / "ours.safetensors"))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), mae.state_dict().values(), strict=True))
    with pytest.raises(CheckpointError, match="is not a mae_vit_tiny_p4_28: its patch_size is 7"):
        create_with_weights("mae_vit_tiny_p4_28", checkpoint=str(tmp_path / "ours.safetensors"))


def test_the_registry_names_timm_vits_with_their_input_config():
    from mae.registry import create_model as create_with_weights

    m = create_with_weights("timm:vit_tiny_patch16_224")
    assert m.arch.img_size == 224 and m.arch.input_mean == (0.5, 0.5, 0.5)  # timm's pretrained_cfg for it
