"""Image folders streamed from disk: images are decoded when a batch asks for them, never held whole.

:class:`FolderImages` stands where an in-memory split keeps its ``uint8 [N, C, H, W]`` tensor: it holds
the file paths only, and ``images[idx]`` (``idx`` a LongTensor or a list) decodes those files into a
``uint8 [B, C, S, S]`` tensor. Memory is then that of one batch (plus the workers'), whatever the number
of images. :func:`folder_batches` feeds a ``torch.utils.data.DataLoader`` with worker processes from a
fixed order of index batches, so the batches are the same, in the same order, with or without workers.

Each image is prepared as timm and MAE evaluate: converted to L or RGB, its shorter side resized to
``S / crop_pct`` (bilinear, antialiased), then centre-cropped to ``S x S`` (no squashing). Training
augmentation (random shift and flip) is applied per batch by :func:`mae.data.augment`, after decoding.

Why not ``torchvision.datasets.ImageFolder`` as the dataset itself: it is used to find the files and
classes (its rules, its extensions), but its samples are per-image ``(PIL, label)`` pairs, while every
consumer here (distillation, evaluation, the sensitivity calibration batch) draws index batches.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
from torch.utils.data import DataLoader, Dataset

ENV_WORKERS = "MAE_DATA_WORKERS"


def default_workers() -> int:
    """Decoding processes: ``$MAE_DATA_WORKERS``, else one less than the cores (at most 8): on a 2-core
    machine one worker decodes while the main process computes."""
    if os.environ.get(ENV_WORKERS, "").strip():
        return max(0, int(os.environ[ENV_WORKERS]))
    return max(0, min(8, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class FolderImages:
    """The images of an image folder (or a subset of it), decoded on access (module doc).

    ``paths`` the files; ``img_size`` S; ``in_chans`` 1 (L) or 3 (RGB); ``crop_pct`` the share of the
    resized image the centre crop keeps (1.0: resize the shorter side to S, crop the longer one).
    """

    paths: tuple[str, ...]
    img_size: int
    in_chans: int = 3
    crop_pct: float = 1.0

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.in_chans, self.img_size, self.img_size)

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def decode(self, i: int) -> torch.Tensor:
        """Image ``i`` as ``uint8 [C, S, S]``."""
        from PIL import Image
        from torchvision.transforms import functional as TF

        with Image.open(self.paths[i]) as img:
            img = img.convert("L" if self.in_chans == 1 else "RGB")
            img = TF.resize(img, math.floor(self.img_size / self.crop_pct), antialias=True)
            img = TF.center_crop(img, [self.img_size, self.img_size])
            return TF.pil_to_tensor(img)

    def __getitem__(self, idx: torch.Tensor | Sequence[int] | slice) -> torch.Tensor:
        """``uint8 [B, C, S, S]`` of the images at ``idx`` (decoded in this process)."""
        ids = self._ids(idx)
        if not ids:
            return torch.empty(0, self.in_chans, self.img_size, self.img_size, dtype=torch.uint8)
        return torch.stack([self.decode(i) for i in ids])

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self.decode(i) for i in range(len(self.paths)))

    def take(self, idx: torch.Tensor | Sequence[int] | slice) -> FolderImages:
        """The subset at ``idx`` (no decoding)."""
        return replace(self, paths=tuple(self.paths[i] for i in self._ids(idx)))

    def _ids(self, idx: torch.Tensor | Sequence[int] | slice) -> list[int]:
        """Image positions of an index (tensor, sequence or slice) as Python ints."""
        if isinstance(idx, slice):
            return list(range(len(self.paths))[idx])
        return [int(i) for i in (idx.tolist() if isinstance(idx, torch.Tensor) else idx)]

    def resized(self, img_size: int, in_chans: int, crop_pct: float) -> FolderImages:
        return replace(self, img_size=img_size, in_chans=in_chans, crop_pct=crop_pct)

    def equal(self, other: object) -> bool:
        """Same files, same preparation (what ``Tensor.equal`` means for in-memory splits)."""
        return isinstance(other, FolderImages) and self == other


class _Decoded(Dataset):
    """A map-style dataset over :class:`FolderImages`: item ``i`` is image ``i``, ``uint8 [C, S, S]``."""

    def __init__(self, images: FolderImages):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images.decode(i)


def folder_batches(images: FolderImages, index_batches: Sequence[torch.Tensor], *,
                   workers: int | None = None) -> Iterator[torch.Tensor]:
    """``uint8 [B, C, S, S]`` for each index batch in ``index_batches``, in that order, decoded by
    ``workers`` processes (default :func:`default_workers`; 0: in this process)."""
    workers = default_workers() if workers is None else workers
    batches = [b.tolist() for b in index_batches]
    if workers == 0 or len(batches) <= 1:
        for b in batches:
            yield images[b]
        return
    loader = DataLoader(_Decoded(images), batch_sampler=batches, num_workers=workers,
                        collate_fn=torch.stack, prefetch_factor=2, persistent_workers=False)
    yield from loader
