"""Distinct, photo-like images made from a seed, for tests and benchmarks (nothing downloaded)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def pattern(seed: int, size: int = 224) -> Image.Image:
    """A smooth colour field with seed-specific stripes and shapes: images a CNN and PDQ both tell apart."""
    rng = np.random.default_rng(seed)
    field = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC)
    # Stripes of a seed-specific frequency and angle give each image texture a CNN tells apart.
    yy, xx = np.mgrid[0:size, 0:size]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 30)
    stripes = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0)[..., None]
    ink = rng.integers(0, 256, 3).astype(np.uint8)
    image = Image.fromarray(np.where(stripes, ink, np.asarray(image)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0 = (int(v) for v in rng.integers(0, size - 30, 2))
        w, h = (int(v) for v in rng.integers(15, 90, 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=fill)
    return image
