"""Hand-crafted image descriptors: an RGB colour histogram and local binary patterns (LBP).

These are the descriptors of the published 68-class gemstone anchor (Chow & Reyes-Aldasoro 2022,
Random Forest on colour histogram + LBP). LBP is implemented here in numpy, without scikit-image.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, ImageError


def _as_batch(images) -> np.ndarray:
    """A (N, H, W, 3) array of images; a single (H, W, 3) image becomes a batch of one."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ImageError(f"expected images of shape (N, H, W, 3), got {array.shape}")
    if array.shape[0] == 0:
        raise ImageError("no images given")
    if array.dtype != np.uint8:
        # float images are taken as [0, 1] when their maximum is at most 1, else as 0..255.
        scale = 255.0 if float(np.nanmax(array)) <= 1.0 else 1.0
        array = np.clip(np.rint(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return array


def color_histogram(images, bins: int = 8, joint: bool = True) -> np.ndarray:
    """Normalised RGB histograms, one row per image.

    ``joint=True`` counts (R, G, B) triples in ``bins**3`` cells; ``joint=False`` concatenates one
    ``bins``-cell histogram per channel (``3 * bins`` values). Each row sums to 1 (per channel when
    not joint, divided by 3 so the row still sums to 1).
    """
    if bins < 1 or bins > 256:
        raise ConfigError(f"bins must be between 1 and 256, got {bins}")
    batch = _as_batch(images)
    n = batch.shape[0]
    quantised = (batch.astype(np.int64) * bins) // 256  # 0 .. bins-1
    pixels = quantised.reshape(n, -1, 3)
    if joint:
        cells = (pixels[..., 0] * bins + pixels[..., 1]) * bins + pixels[..., 2]
        offsets = np.arange(n)[:, None] * bins**3
        counts = np.bincount((cells + offsets).ravel(), minlength=n * bins**3)
        hist = counts.reshape(n, bins**3).astype(np.float32)
    else:
        hist = np.zeros((n, 3 * bins), np.float32)
        for channel in range(3):
            offsets = np.arange(n)[:, None] * bins
            counts = np.bincount((pixels[..., channel] + offsets).ravel(), minlength=n * bins)
            hist[:, channel * bins : (channel + 1) * bins] = counts.reshape(n, bins)
    return hist / hist.sum(axis=1, keepdims=True)


def to_gray(images) -> np.ndarray:
    """Luma (ITU-R BT.601) of uint8 RGB images as float64 (N, H, W) in 0..255."""
    batch = _as_batch(images).astype(np.float64)
    return batch[..., 0] * 0.299 + batch[..., 1] * 0.587 + batch[..., 2] * 0.114


def _bilinear(gray: np.ndarray, dy: float, dx: float, radius: int) -> np.ndarray:
    """Values of ``gray`` (N, H, W) sampled at offset (dy, dx) for every pixel of the inner
    region that stays ``radius`` pixels away from the border."""
    n, height, width = gray.shape
    y0, x0 = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = dy - y0, dx - x0
    out_h, out_w = height - 2 * radius, width - 2 * radius

    def window(oy: int, ox: int) -> np.ndarray:
        top, left = radius + oy, radius + ox
        return gray[:, top : top + out_h, left : left + out_w]

    value = (1 - fy) * (1 - fx) * window(y0, x0)
    if fx > 1e-9:
        value = value + (1 - fy) * fx * window(y0, x0 + 1)
    if fy > 1e-9:
        value = value + fy * (1 - fx) * window(y0 + 1, x0)
    if fx > 1e-9 and fy > 1e-9:
        value = value + fy * fx * window(y0 + 1, x0 + 1)
    return value


def lbp_codes(gray, points: int = 8, radius: int = 1) -> np.ndarray:
    """Raw LBP codes of grey images (N, H, W) or (H, W): bit ``p`` is set when neighbour ``p``
    (on a circle of ``radius``, sampled bilinearly, counter-clockwise from the right) is >= the
    centre. Returns int64 codes of shape (N, H - 2r, W - 2r)."""
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim == 2:
        gray = gray[None]
    if gray.ndim != 3:
        raise ImageError(f"expected grey images (N, H, W), got shape {gray.shape}")
    if radius < 1 or points < 1 or points > 32:
        raise ConfigError("need radius >= 1 and 1 <= points <= 32")
    if min(gray.shape[1:]) <= 2 * radius:
        raise ImageError(f"images of {gray.shape[1:]} pixels are too small for LBP radius {radius}")
    centre = gray[:, radius : gray.shape[1] - radius, radius : gray.shape[2] - radius]
    codes = np.zeros(centre.shape, np.int64)
    for p in range(points):
        angle = 2 * np.pi * p / points
        dy, dx = -radius * np.sin(angle), radius * np.cos(angle)
        dy, dx = round(dy, 9), round(dx, 9)  # exact integers for the axis-aligned neighbours
        neighbour = _bilinear(gray, dy, dx, radius)
        codes |= (neighbour >= centre - 1e-9).astype(np.int64) << p
    return codes


def _transitions(code: int, points: int) -> int:
    """Number of 0/1 changes around the circular bit pattern."""
    bits = [(code >> p) & 1 for p in range(points)]
    return sum(bits[p] != bits[(p + 1) % points] for p in range(points))


def lbp_mapping(points: int = 8, method: str = "riu2") -> tuple[np.ndarray, int]:
    """Lookup table code -> bin and the number of bins.

    ``"riu2"``: rotation-invariant uniform patterns, ``points + 2`` bins (the number of set bits for
    patterns with at most two transitions, one extra bin for the rest). ``"uniform"``: one bin per
    uniform pattern plus one for the rest (59 bins for 8 points).
    """
    size = 1 << points
    table = np.zeros(size, np.int64)
    if method == "riu2":
        for code in range(size):
            table[code] = bin(code).count("1") if _transitions(code, points) <= 2 else points + 1
        return table, points + 2
    if method == "uniform":
        next_bin = 0
        uniform = []
        for code in range(size):
            if _transitions(code, points) <= 2:
                uniform.append(code)
        other = len(uniform)
        table[:] = other
        for next_bin, code in enumerate(uniform):
            table[code] = next_bin
        return table, other + 1
    raise ConfigError(f"unknown LBP method {method!r}; use 'riu2' or 'uniform'")


def lbp_histogram(images, points: int = 8, radii=(1, 2, 3), method: str = "riu2") -> np.ndarray:
    """Normalised LBP histograms of RGB images (N, H, W, 3), concatenated over ``radii``."""
    gray = to_gray(images)
    table, bins = lbp_mapping(points, method)
    parts = []
    for radius in radii:
        labels = table[lbp_codes(gray, points, radius)]
        n = labels.shape[0]
        offsets = np.arange(n)[:, None] * bins
        counts = np.bincount((labels.reshape(n, -1) + offsets).ravel(), minlength=n * bins)
        hist = counts.reshape(n, bins).astype(np.float32)
        parts.append(hist / hist.sum(axis=1, keepdims=True))
    return np.concatenate(parts, axis=1)


def handcrafted_features(
    images, bins: int = 8, radii=(1, 2, 3), method: str = "riu2", batch_size: int = 64
) -> np.ndarray:
    """RGB joint colour histogram followed by multi-radius LBP histograms, float32 (N, D)."""
    batch = _as_batch(images)
    rows = []
    for start in range(0, len(batch), batch_size):
        chunk = batch[start : start + batch_size]
        rows.append(
            np.concatenate(
                [color_histogram(chunk, bins=bins, joint=True), lbp_histogram(chunk, radii=radii, method=method)],
                axis=1,
            )
        )
    return np.concatenate(rows, axis=0).astype(np.float32)


def foreground_mask(images, threshold: float = 40.0, border: int = 4, min_share: float = 0.05) -> np.ndarray:
    """Boolean (N, H, W): pixels whose RGB distance from the background colour exceeds
    ``threshold``. The background colour is the median of a ``border``-pixel frame (product photos
    of stones lie on a plain backdrop). Images with under ``min_share`` foreground use all pixels."""
    batch = _as_batch(images).astype(np.float32)
    n = batch.shape[0]
    frame = np.concatenate(
        [
            batch[:, :border].reshape(n, -1, 3),
            batch[:, -border:].reshape(n, -1, 3),
            batch[:, :, :border].reshape(n, -1, 3),
            batch[:, :, -border:].reshape(n, -1, 3),
        ],
        axis=1,
    )
    background = np.median(frame, axis=1)
    distance = np.linalg.norm(batch - background[:, None, None, :], axis=-1)
    mask = distance > threshold
    mask[mask.mean(axis=(1, 2)) < min_share] = True
    return mask


def foreground_color_histogram(images, bins=(12, 4, 4), threshold: float = 40.0) -> np.ndarray:
    """Normalised HSV histogram (hue x saturation x value cells) of the foreground pixels only,
    so the backdrop's colour does not swamp the stone's."""
    from matplotlib.colors import rgb_to_hsv

    batch = _as_batch(images)
    while min(batch.shape[1:3]) > 160:  # colour statistics need no more pixels: 4x less work
        batch = batch[:, ::2, ::2]
    n = batch.shape[0]
    mask = foreground_mask(batch, threshold).reshape(n, -1)
    hsv = rgb_to_hsv(batch.astype(np.float32) / 255.0).reshape(n, -1, 3)
    cells = np.zeros(hsv.shape[:2], np.int64)
    for channel, count in enumerate(bins):
        cells = cells * count + np.minimum((hsv[..., channel] * count).astype(np.int64), count - 1)
    size = int(np.prod(bins))
    offsets = np.arange(n)[:, None] * size
    counts = np.bincount(
        (cells + offsets).ravel(), weights=mask.ravel().astype(np.float64), minlength=n * size
    ).reshape(n, size)
    return (counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)
