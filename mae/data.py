"""Datasets: Fashion-MNIST from IDX files (in memory, 55 MB), or a user's image folder (streamed).

A split's images are ``uint8 [N, C, H, W]``: a tensor for Fashion-MNIST, a
:class:`mae.folders.FolderImages` for a folder (decoded per batch by DataLoader workers, so memory does
not grow with the number of images). Normalisation (per channel, the *model's* statistics: see
``ViTArch.input_mean``) and augmentation happen per batch with tensor ops.
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from core.errors import UserError
from mae.folders import FolderImages, folder_batches

DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VAL_SIZE = 5000
SPLIT_SEED = 0  # the train/validation split is fixed: never derived from the run's seed


class DatasetError(UserError):
    """A dataset is missing or unreadable; the message is one sentence for the user."""


Stats = float | tuple[float, ...]  # one value for every channel, or one per channel


def take(images: torch.Tensor | FolderImages, idx: torch.Tensor | slice) -> torch.Tensor | FolderImages:
    """The images at ``idx``: a tensor is indexed, a folder subset is made without decoding."""
    return images.take(idx) if isinstance(images, FolderImages) else images[idx]


@dataclass(frozen=True)
class ImageSplit:
    """One split: ``images uint8 [N, C, H, W]`` (a tensor, or a folder decoded on access),
    ``labels int64 [N]``, and the normalisation ``(x / 255 - mean) / std`` per channel."""

    images: torch.Tensor | FolderImages
    labels: torch.Tensor
    classes: tuple[str, ...]
    mean: Stats
    std: Stats
    origin: str = ""  # where the images came from, for the run's printout (e.g. "val/ (no test/ folder)")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, n: int | None) -> "ImageSplit":
        """The first ``n`` examples (all when ``n`` is None)."""
        if n is None:
            return self
        return replace(self, images=take(self.images, slice(None, n)), labels=self.labels[:n])


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) into a numpy array of its declared dtype and shape."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise DatasetError(f"{path} has an unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(dtypes[data[2]])
    body = data[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise DatasetError(f"{path} is truncated: header says {shape}, file holds {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _find(data_dir: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (data_dir / name).exists():
            return data_dir / name
    return None


def _torchvision_fallback(data_dir: Path) -> Path | None:
    """Download with torchvision where a network exists; None when offline."""
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(data_dir), train=True, download=True)
        FashionMNIST(str(data_dir), train=False, download=True)
    except Exception:  # offline or blocked: the caller gives the install hint
        return None
    return data_dir / "FashionMNIST" / "raw"


def load_fashion_mnist(data_dir: str | Path | None = None, download: bool = False) -> dict[str, ImageSplit]:
    """Fashion-MNIST as fixed splits: ``train`` (55k), ``val`` (5k, from the train file), ``test`` (10k).

    Looks in ``data_dir`` (default: ``$MAE_FASHION_MNIST_DIR`` or Debian's package location). With
    ``download=True`` and a network, torchvision's downloader is the fallback.
    """
    data_dir = Path(data_dir or os.environ.get("MAE_FASHION_MNIST_DIR", DEFAULT_FASHION_MNIST_DIR))
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    paths = [_find(data_dir, s) for s in stems]
    if any(p is None for p in paths) and download:
        raw = _torchvision_fallback(Path.home() / ".cache" / "mae-compress-search")
        paths = [_find(raw, s) for s in stems] if raw else paths
    if any(p is None for p in paths):
        raise DatasetError(
            f"Fashion-MNIST not found in {data_dir}: install it with "
            "'sudo apt-get install dataset-fashion-mnist' or pass --data-dir DIR holding the IDX files"
        )
    tr_x, tr_y, te_x, te_y = (read_idx(p) for p in paths)  # type: ignore[arg-type]
    if tr_x.shape[0] != tr_y.shape[0] or te_x.shape[0] != te_y.shape[0]:
        raise DatasetError(f"Fashion-MNIST in {data_dir} has image and label files of different lengths")
    perm = torch.randperm(tr_x.shape[0], generator=torch.Generator().manual_seed(SPLIT_SEED))
    tr_images = torch.from_numpy(tr_x.copy()).unsqueeze(1)
    tr_labels = torch.from_numpy(tr_y.astype(np.int64))
    val_idx, train_idx = perm[:VAL_SIZE], perm[VAL_SIZE:]

    def split(x: torch.Tensor, y: torch.Tensor) -> ImageSplit:
        return ImageSplit(x.contiguous(), y.contiguous(), FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN,
                          FASHION_MNIST_STD)

    return {
        "train": split(tr_images[train_idx], tr_labels[train_idx]),
        "val": split(tr_images[val_idx], tr_labels[val_idx]),
        "test": split(torch.from_numpy(te_x.copy()).unsqueeze(1), torch.from_numpy(te_y.astype(np.int64))),
    }


HELD_OUT_SHARE = 0.1  # of a folder's images, per split that the folder lacks


def _carve(x: FolderImages, y: torch.Tensor, names: tuple[str, ...]) -> dict[str, tuple[FolderImages, torch.Tensor]]:
    """Seeded (``SPLIT_SEED``) held-out parts: ``HELD_OUT_SHARE`` of the images (at least 1) for each of
    ``names`` in order, the rest as ``train``."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n = max(1, int(len(y) * HELD_OUT_SHARE))
    if len(y) <= n * len(names):
        raise DatasetError(f"{len(y)} images are too few to hold out {', '.join(names)} and keep some for train")
    parts = {name: perm[i * n:(i + 1) * n] for i, name in enumerate(names)} | {"train": perm[n * len(names):]}
    return {k: (x.take(i), y[i]) for k, i in parts.items()}


def load_image_folder(root: str | Path, img_size: int, in_chans: int = 3, crop_pct: float = 1.0,
                      mean: Stats = 0.5, std: Stats = 0.5) -> dict[str, ImageSplit]:
    """A user's folder, always as ``train``, ``val`` and ``test``, streamed (:mod:`mae.folders`: files
    found now, decoded per batch, shorter side resized to ``img_size / crop_pct`` then centre-cropped).

    Layouts, and the rule for a split that is missing (seeded, ``HELD_OUT_SHARE`` = 10% per split):

    * ``root/{train,val,test}/<class>/*``: as they are.
    * ``root/{train,val}/<class>/*`` (the ImageNet layout): ``val/`` is the held-out set the winner is
      reported on, so it becomes ``test``; 10% of ``train/`` becomes ``val`` (what the search selects on).
    * ``root/train/<class>/*`` alone: 10% of it for ``val``, another 10% for ``test``.
    * ``root/<class>/*``: the same, 80/10/10.

    Each split's ``origin`` says where its images came from. ``mean``/``std``: the normalisation, which
    is the model's (:func:`load_dataset` passes it), never estimated from the images."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist")

    def read(folder: Path) -> tuple[FolderImages, torch.Tensor, tuple[str, ...]]:
        try:
            ds = ImageFolder(str(folder))  # finds the files and classes; nothing is decoded here
        except (FileNotFoundError, RuntimeError) as e:
            raise DatasetError(f"cannot read image folder {folder}: {e}") from None
        images = FolderImages(tuple(p for p, _ in ds.samples), img_size, in_chans, crop_pct)
        return images, torch.tensor(ds.targets, dtype=torch.int64), tuple(ds.classes)

    has = {name: (root / name).is_dir() for name in ("train", "val", "test")}
    if has["train"]:
        x, y, classes = read(root / "train")
        folders = {name: read(root / name) for name in ("val", "test") if has[name]}
        for name, (_, _, other) in folders.items():
            if other != classes:
                raise DatasetError(f"{root / name} has classes {list(other)[:5]}..., train/ has {list(classes)[:5]}...: "
                                   "every split needs the same class folders")
        if has["val"] and has["test"]:
            splits = {"train": (x, y)} | {k: v[:2] for k, v in folders.items()}
            origin = {"train": "train/", "val": "val/", "test": "test/"}
        elif has["val"] or has["test"]:
            given = "val" if has["val"] else "test"
            splits = _carve(x, y, ("val",)) | {"test": folders[given][:2]}
            origin = {"train": "train/ less the 10% held out for val", "val": "a seeded 10% of train/",
                      "test": f"{given}/ (no {'test' if given == 'val' else 'val'}/ folder)"}
        else:
            splits = _carve(x, y, ("val", "test"))
            origin = {"train": "train/ less 20% held out", "val": "a seeded 10% of train/",
                      "test": "another seeded 10% of train/"}
    else:
        x, y, classes = read(root)
        splits = _carve(x, y, ("val", "test"))
        origin = {"train": "80% of the folder", "val": "a seeded 10% of the folder", "test": "another seeded 10%"}
    return {k: ImageSplit(*splits[k], classes, mean, std, origin[k]) for k in ("train", "val", "test")}


def describe_splits(splits: dict[str, ImageSplit]) -> str:
    """One line: how many images each split got, and from where (image folders say)."""
    return "; ".join(f"{k} {len(v)} images" + (f" ({v.origin})" if v.origin else "") for k, v in splits.items())


def normalise(images: torch.Tensor, mean: Stats, std: Stats) -> torch.Tensor:
    """``uint8 [N, C, H, W]`` -> ``float32 [N, C, H, W]``, standardised per channel."""
    x = images.float() / 255.0
    if isinstance(mean, (int, float)) and isinstance(std, (int, float)):
        return (x - mean) / std
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random shift by up to ``pad`` pixels (zero fill) and horizontal flip, per image.

    ``images: [N, C, H, W]`` (any dtype) -> same shape. Batched tensor ops, no Python loop per image.
    """
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # [N, H]
    cols = (dx[:, None] + torch.arange(w)[None, :])  # [N, W]
    flip = torch.rand(n, generator=generator) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # [N, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def iterate_batches(
    split: ImageSplit, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
    augment_images: bool = False, drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images float32 [B, C, H, W] normalised, labels int64 [B])``."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - (n % batch_size) if drop_last else n
    index_batches = [order[start : start + batch_size] for start in range(0, stop, batch_size)]
    if isinstance(split.images, FolderImages):  # decoded by DataLoader workers, batch by batch
        images = folder_batches(split.images, index_batches)
    else:
        images = (split.images[idx] for idx in index_batches)
    for idx, x in zip(index_batches, images):
        if augment_images:
            assert generator is not None, "augmentation needs a seeded generator"
            x = augment(x, generator, pad=max(2, x.shape[-1] // 14))  # 2 px at 28, 16 px at 224
        yield normalise(x, split.mean, split.std), split.labels[idx]


def fit_to_model(split: ImageSplit, img_size: int, in_chans: int, *, mean: Stats | None = None,
                 std: Stats | None = None, crop_pct: float = 1.0) -> ImageSplit:
    """``split`` as a model built for ``img_size`` x ``img_size`` x ``in_chans`` reads it, normalised with
    the model's ``mean``/``std`` (None: keep the split's). In memory (e.g. Fashion-MNIST into a 224x224
    RGB timm ViT): resized (bilinear) and channels repeated or averaged. A folder: decoded at that size
    and crop when a batch is drawn."""
    stats = {"mean": split.mean if mean is None else mean, "std": split.std if std is None else std}
    if isinstance(split.images, FolderImages):
        return replace(split, images=split.images.resized(img_size, in_chans, crop_pct), **stats)
    x = split.images
    if x.shape[1] != in_chans:
        x = x.expand(-1, in_chans, -1, -1) if x.shape[1] == 1 else x.float().mean(1, keepdim=True).round().byte()
    if x.shape[-1] != img_size or x.shape[-2] != img_size:
        x = torch.nn.functional.interpolate(x.float(), size=(img_size, img_size), mode="bilinear",
                                            antialias=True, align_corners=False).round().clamp(0, 255).byte()
    return replace(split, images=x.contiguous(), **stats)


def load_dataset(data: str, *, data_dir: str | Path | None, img_size: int, in_chans: int,
                 mean: Stats | None = None, std: Stats | None = None, crop_pct: float = 1.0,
                 limits: dict[str, int | None] | None = None, only: str | None = None) -> dict[str, ImageSplit]:
    """The splits of ``data`` (``fashion-mnist`` or an image folder) fitted to a model's input
    (:func:`fit_to_model`; ``ViTArch.data_kwargs()`` gives size, channels, statistics and crop);
    ``limits`` cuts splits to their first N images before resizing (less work); ``only`` keeps one
    split (the others are not resized at all).
    The one loader behind ``run_search.py --data`` and ``maec eval|apply|sensitivity --data``."""
    if data == "fashion-mnist":
        raw = load_fashion_mnist(data_dir)
    else:
        raw = load_image_folder(data, img_size, in_chans, crop_pct)
    limits = limits or {}
    return {k: fit_to_model(v.head(limits.get(k)), img_size, in_chans, mean=mean, std=std, crop_pct=crop_pct)
            for k, v in raw.items() if only is None or k == only}
