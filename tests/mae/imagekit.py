"""Image folders written for the data tests (random RGB PNGs, seeded)."""
from __future__ import annotations

import numpy as np
from PIL import Image


def write_image_folder(root, splits: dict[str, int], classes=("cat", "dog"), size: tuple[int, int] = (12, 12)) -> None:
    """``root/<split>/<class>/<i>.png`` (``split`` "" for the flat layout), ``n`` images per class of
    ``size`` (height, width)."""
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        for cls in classes:
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(d / f"{i}.png")
