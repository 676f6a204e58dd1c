import gzip
import struct

import numpy as np
import pytest
import torch
from imagekit import write_image_folder

from mae.data import (
    DatasetError,
    augment,
    describe_splits,
    fit_to_model,
    iterate_batches,
    load_fashion_mnist,
    load_image_folder,
    read_idx,
)


def test_idx_parser_reads_the_real_files(fashion_mnist):
    s = fashion_mnist
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (55000, 5000, 10000)
    assert s["test"].images.shape == (10000, 1, 28, 28) and s["test"].images.dtype == torch.uint8
    # class balance of the official test file: exactly 1,000 per class
    assert torch.bincount(s["test"].labels).tolist() == [1000] * 10
    # the fixed split is disjoint and covers the train file: 6,000 per class in total
    counts = torch.bincount(s["train"].labels, minlength=10) + torch.bincount(s["val"].labels, minlength=10)
    assert counts.tolist() == [6000] * 10


def test_split_is_fixed_across_calls(fashion_mnist):
    again = load_fashion_mnist()
    assert torch.equal(again["val"].labels, fashion_mnist["val"].labels)
    assert torch.equal(again["val"].images[:50], fashion_mnist["val"].images[:50])


def test_idx_errors_are_one_sentence(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(bad)
    (tmp_path / "junk.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match="cannot read"):
        read_idx(tmp_path / "junk.gz")


def test_idx_round_trip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    with gzip.open(tmp_path / "a.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 3, 4) + arr.tobytes())
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def test_augment_is_seeded_shift_and_flip():
    x = torch.zeros(4, 1, 6, 6, dtype=torch.uint8)
    x[:, :, 2, 3] = 255
    a = augment(x, torch.Generator().manual_seed(0), pad=2)
    b = augment(x, torch.Generator().manual_seed(0), pad=2)
    assert torch.equal(a, b) and a.shape == x.shape
    assert (a == 255).sum(dim=(1, 2, 3)).tolist() == [1, 1, 1, 1]  # one pixel moved, none duplicated


def test_batches_are_normalised(fashion_mnist):
    x, y = next(iterate_batches(fashion_mnist["val"], 1000, shuffle=False))
    assert x.shape == (1000, 1, 28, 28) and y.shape == (1000,)
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1


def test_image_folder_and_resizing(tmp_path):
    write_image_folder(tmp_path, {"": 10}, size=(20, 30))
    splits = load_image_folder(tmp_path, img_size=16, in_chans=3)
    assert sum(len(s) for s in splits.values()) == 20 and splits["train"].classes == ("cat", "dog")
    assert splits["train"].images.shape[1:] == (3, 16, 16)
    gray = fit_to_model(splits["val"], img_size=8, in_chans=1)
    assert gray.images.shape[1:] == (1, 8, 8) and gray.images.dtype == torch.uint8
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(tmp_path / "nope", 16)


@pytest.mark.parametrize("layout, sizes, origins", [
    ({"train": 10, "val": 3, "test": 4}, {"train": 20, "val": 6, "test": 8}, ("train/", "val/", "test/")),
    # the ImageNet layout: val/ is the held-out set (test), 10% of train/ selects configs (val)
    ({"train": 10, "val": 3}, {"train": 18, "val": 2, "test": 6}, ("train/ less", "a seeded 10% of train/", "val/")),
    ({"train": 10}, {"train": 16, "val": 2, "test": 2}, ("train/ less 20%", "a seeded 10%", "another seeded 10%")),
    ({"": 10}, {"train": 16, "val": 2, "test": 2}, ("80%", "a seeded 10%", "another seeded 10%")),
])
def test_every_folder_layout_gives_train_val_and_test(tmp_path, layout, sizes, origins):
    write_image_folder(tmp_path, layout)
    splits = load_image_folder(tmp_path, img_size=8, in_chans=3)
    assert {k: len(v) for k, v in splits.items()} == sizes
    for name, origin in zip(("train", "val", "test"), origins):
        assert splits[name].origin.startswith(origin), (name, splits[name].origin)
    assert describe_splits(splits).startswith(f"train {sizes['train']} images (")
    # the held-out parts are disjoint from train: no image is in two splits
    rows = {k: {tuple(x.flatten().tolist()) for x in v.images} for k, v in splits.items()}
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"]
    assert load_image_folder(tmp_path, img_size=8, in_chans=3)["val"].images.equal(splits["val"].images)  # seeded


def test_split_folders_with_other_classes_are_refused(tmp_path):
    write_image_folder(tmp_path, {"train": 2})
    write_image_folder(tmp_path, {"val": 2}, classes=("cat", "cow"))
    with pytest.raises(DatasetError, match="every split needs the same class folders"):
        load_image_folder(tmp_path, img_size=8)
