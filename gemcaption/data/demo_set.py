"""A synthetic jewellery set drawn with Pillow: no download, no files needed beforehand.

THE IMAGES ARE SYNTHETIC (flat cartoon renderings, not photographs). They exist so the whole
pipeline (training, captioning, search, evaluation) can be tried and tested in about a minute on
a laptop CPU. Each image shows one gem type (its colour), one cut shape and one setting:

* gem / colour: ruby red, sapphire blue, emerald green, amethyst purple, citrine yellow, diamond clear
* cut: round, oval, square, pear, heart, marquise (drawn with facet lines and shading)
* setting: loose, ring, pendant (on a chain), earrings (a pair on hooks), in gold or silver metal

Position, size, background and lighting are jittered so no two images are identical. Every image
has 3-5 template captions ("a blue oval sapphire set in a gold ring"); its label is the gem type.
Images are split 70/15/15 into train/val/test by image, stratified by gem type.

Files are written once into a cache folder (``cache_dir("demo", <hash of the parameters>)`` by
default) with a ``demo.json`` manifest and reused on the next call with the same parameters.
Output is deterministic: the same parameters give byte-identical images.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import ConfigError
from ..persistence import PathLike, atomic_write_bytes, atomic_write_text, cache_dir
from .splits import assign_splits
from .types import Dataset, Sample

GENERATOR_VERSION = 1  # bump when the drawing changes, so old caches are not reused

GEMS = {  # gem type -> (colour word, base RGB)
    "ruby": ("red", (200, 16, 40)),
    "sapphire": ("blue", (22, 60, 200)),
    "emerald": ("green", (12, 150, 70)),
    "amethyst": ("purple", (140, 60, 190)),
    "citrine": ("yellow", (245, 200, 30)),
    "diamond": ("clear", (232, 238, 245)),
}
CUTS = ("round", "oval", "square", "pear", "heart", "marquise")
SETTINGS = ("loose", "ring", "pendant", "earrings")
METALS = {"gold": (212, 170, 60), "silver": (190, 194, 204)}
BACKGROUNDS = ((40, 40, 44), (70, 66, 62), (225, 222, 215), (245, 240, 228), (30, 34, 52), (200, 205, 210))
SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}

TEMPLATES = {
    "loose": (
        "a {colour} {cut} {gem}",
        "a loose {cut} {gem}",
        "a loose {colour} gemstone with a {cut} cut",
        "a {cut} cut {gem} on its own",
        "a single {colour} {gem} cut in a {cut} shape",
    ),
    "ring": (
        "a {colour} {cut} {gem} set in a {metal} ring",
        "a {metal} ring with a {cut} {gem}",
        "a {metal} ring set with a {colour} {cut} gemstone",
        "a {cut} {gem} on a {metal} ring",
        "a {colour} {gem} ring in {metal}",
    ),
    "pendant": (
        "a {colour} {cut} {gem} pendant on a {metal} chain",
        "a {metal} pendant with a {cut} {gem}",
        "a {metal} necklace holding a {colour} {cut} gemstone",
        "a {cut} {gem} hanging from a {metal} chain",
        "a {colour} {gem} pendant in {metal}",
    ),
    "earrings": (
        "a pair of {metal} earrings with {colour} {cut} {gems}",
        "{cut} {gem} earrings in {metal}",
        "a pair of {colour} {cut} earrings in {metal}",
        "two {metal} earrings set with {cut} {gems}",
        "{colour} {gem} drop earrings on {metal} hooks",
    ),
}


# ---------------------------------------------------------------------------------------------
# drawing


def _circle_angles() -> np.ndarray:
    return np.linspace(0, 2 * math.pi, 48, endpoint=False)


def cut_outline(cut: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Polygon of a gem outline of cut ``cut`` centred on (cx, cy) with half-height ``r``."""
    if cut == "round":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in _circle_angles()]
    if cut == "oval":
        return [(cx + 0.68 * r * math.cos(a), cy + r * math.sin(a)) for a in _circle_angles()]
    if cut == "square":
        s = 0.85 * r
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if cut == "pear":
        radius, centre = 0.62 * r, cy + 0.38 * r
        arc = [
            (cx + radius * math.cos(a), centre + radius * math.sin(a))
            for a in np.linspace(math.radians(-25), math.radians(205), 36)
        ]
        return arc + [(cx, cy - r)]
    if cut == "heart":
        pts = []
        for t in np.linspace(0, 2 * math.pi, 60, endpoint=False):
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((cx + x * r / 16.5, cy - (y + 2.5) * r / 15.0))
        return pts
    if cut == "marquise":
        right = [(cx + 0.5 * r * math.sin(t), cy - r * math.cos(t)) for t in np.linspace(0, math.pi, 25)]
        left = [(cx - 0.5 * r * math.sin(t), cy + r * math.cos(t)) for t in np.linspace(0, math.pi, 25)[1:-1]]
        return right + left
    raise ConfigError(f"unknown cut {cut!r}; known: {CUTS}")


def _shade(colour, factor: float) -> tuple[int, int, int]:
    red, green, blue = (int(max(0, min(255, c * factor))) for c in colour)
    return red, green, blue


def _facet_vertices(outline, count: int = 12):
    step = max(1, len(outline) // count)
    return outline[::step] if len(outline) > 4 else outline


def draw_gem(
    draw: ImageDraw.ImageDraw,
    cut: str,
    colour: tuple[int, int, int],
    cx: float,
    cy: float,
    r: float,
    light: float,
    clear: bool = False,
) -> None:
    """A faceted gem: shaded wedges from the centre, a table facet, facet lines and a highlight."""
    outline = cut_outline(cut, cx, cy, r)
    draw.polygon(outline, fill=_shade(colour, 0.8 * light))
    vertices = _facet_vertices(outline)
    for i, (a, b) in enumerate(zip(vertices, vertices[1:] + vertices[:1])):
        mid_x, mid_y = (a[0] + b[0]) / 2 - cx, (a[1] + b[1]) / 2 - cy
        towards_light = -(mid_x + mid_y) / (abs(mid_x) + abs(mid_y) + 1e-6)  # light from the top left
        factor = light * (1.0 + 0.28 * towards_light + (0.06 if i % 2 else -0.06))
        draw.polygon([(cx, cy), a, b], fill=_shade(colour, factor))
    table = [(cx + 0.5 * (x - cx), cy + 0.5 * (y - cy)) for x, y in outline]
    draw.polygon(table, fill=_shade(colour, 1.12 * light))
    line = (90, 100, 115) if clear else _shade(colour, 0.45)
    width = max(1, int(r / 30))
    for x, y in vertices:
        draw.line([(cx + 0.5 * (x - cx), cy + 0.5 * (y - cy)), (x, y)], fill=line, width=width)
    draw.polygon(table, outline=line, width=width)
    draw.polygon(outline, outline=_shade(line, 0.8), width=width + 1)
    hx, hy = cx - 0.3 * r, cy - 0.35 * r
    draw.ellipse([hx - 0.12 * r, hy - 0.08 * r, hx + 0.12 * r, hy + 0.08 * r], fill=(255, 255, 255))


def _bezel(draw, cut, cx, cy, r, metal):
    draw.polygon(cut_outline(cut, cx, cy, r * 1.12), fill=_shade(metal, 0.75), outline=_shade(metal, 1.15))


def _background(size: int, rng: np.random.Generator) -> Image.Image:
    base = np.array(BACKGROUNDS[rng.integers(len(BACKGROUNDS))], np.float64)
    base = np.clip(base + rng.normal(0, 5, 3), 0, 255)
    ramp = np.linspace(1.0 + rng.uniform(0.0, 0.15), 1.0 - rng.uniform(0.0, 0.15), size)
    pixels = base[None, None, :] * ramp[:, None, None] * np.ones((size, size, 1))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def render_jewel(
    gem: str, cut: str, setting: str, metal: str, size: int = 224, rng: np.random.Generator | None = None
) -> Image.Image:
    """Draw one piece of jewellery (RGB, ``size`` x ``size``) with random jitter from ``rng``."""
    rng = rng if rng is not None else np.random.default_rng(0)
    scale = 2  # drawn at twice the size and reduced: smooth edges
    big = size * scale
    image = _background(big, rng)
    draw = ImageDraw.Draw(image)
    colour = GEMS[gem][1]
    clear = gem == "diamond"
    metal_rgb = _shade(METALS[metal], rng.uniform(0.9, 1.1))
    light = rng.uniform(0.85, 1.15)
    jitter = lambda: rng.uniform(-0.06, 0.06) * big
    if setting == "loose":
        r = big * rng.uniform(0.26, 0.34)
        cx, cy = big / 2 + jitter(), big / 2 + jitter()
        draw.ellipse([cx - r, cy + 0.85 * r, cx + r, cy + 1.15 * r], fill=_shade(image.getpixel((5, 5)), 0.7))
        draw_gem(draw, cut, colour, cx, cy, r, light, clear)
    elif setting == "ring":
        r = big * rng.uniform(0.15, 0.19)
        cx, cy = big / 2 + jitter(), big * 0.36 + jitter()
        band_w, band_h = r * 2.6, r * 2.0
        top = cy + 0.55 * r
        draw.ellipse([cx - band_w, top, cx + band_w, top + 2 * band_h], outline=metal_rgb, width=int(0.38 * r))
        draw.ellipse(
            [cx - band_w + 0.3 * r, top + 0.3 * r, cx + band_w - 0.3 * r, top + 2 * band_h - 0.3 * r],
            outline=_shade(metal_rgb, 0.7),
            width=max(2, int(0.08 * r)),
        )
        _bezel(draw, cut, cx, cy, r, metal_rgb)
        draw_gem(draw, cut, colour, cx, cy, r, light, clear)
        for a in (45, 135, 225, 315):
            px, py = cx + 0.95 * r * math.cos(math.radians(a)), cy + 0.95 * r * math.sin(math.radians(a))
            draw.ellipse([px - 0.12 * r, py - 0.12 * r, px + 0.12 * r, py + 0.12 * r], fill=metal_rgb)
    elif setting == "pendant":
        r = big * rng.uniform(0.17, 0.22)
        cx, cy = big / 2 + jitter(), big * 0.6 + jitter() / 2
        bail_y = cy - 1.3 * r
        width = max(2, int(big / 90))
        for side in (-1, 1):
            points = [
                (cx + side * t * big * 0.5, bail_y - (1 - (1 - t) ** 2) * big * 0.5) for t in np.linspace(0, 1, 20)
            ]
            draw.line(points, fill=metal_rgb, width=width)
            for x, y in points[1::2]:
                draw.ellipse([x - width, y - width, x + width, y + width], outline=_shade(metal_rgb, 0.7))
        draw.ellipse(
            [cx - 0.22 * r, bail_y - 0.22 * r, cx + 0.22 * r, bail_y + 0.35 * r],
            outline=metal_rgb,
            width=max(2, int(0.1 * r)),
        )
        _bezel(draw, cut, cx, cy, r, metal_rgb)
        draw_gem(draw, cut, colour, cx, cy, r, light, clear)
    elif setting == "earrings":
        r = big * rng.uniform(0.12, 0.15)
        cy = big * 0.58 + jitter() / 2
        centre = big / 2 + jitter() / 2
        for cx in (centre - big * 0.22, centre + big * 0.22):
            hook_top = cy - 2.6 * r
            draw.arc(
                [cx - 0.7 * r, hook_top - 0.6 * r, cx + 0.7 * r, hook_top + 0.8 * r],
                180,
                360,
                fill=metal_rgb,
                width=max(2, int(0.12 * r)),
            )
            draw.line(
                [(cx + 0.7 * r, hook_top + 0.1 * r), (cx, cy - 1.1 * r)], fill=metal_rgb, width=max(2, int(0.1 * r))
            )
            draw.ellipse([cx - 0.18 * r, cy - 1.35 * r, cx + 0.18 * r, cy - 0.99 * r], fill=metal_rgb)
            _bezel(draw, cut, cx, cy, r, metal_rgb)
            draw_gem(draw, cut, colour, cx, cy, r, light, clear)
    else:
        raise ConfigError(f"unknown setting {setting!r}; known: {SETTINGS}")
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    return image.filter(ImageFilter.SMOOTH) if rng.random() < 0.3 else image


def captions_for(gem: str, cut: str, setting: str, metal: str, rng: np.random.Generator) -> tuple[str, ...]:
    """3 to 5 distinct template captions describing one rendered piece."""
    templates = TEMPLATES[setting]
    chosen = rng.choice(len(templates), size=int(rng.integers(3, 6)), replace=False)
    words = {
        "gem": gem,
        "gems": gem[:-1] + "ies" if gem.endswith("y") else gem + "s",
        "colour": GEMS[gem][0],
        "cut": cut,
        "metal": metal,
    }
    return tuple(templates[i].format(**words) for i in sorted(chosen))


# ---------------------------------------------------------------------------------------------
# the set


def demo_parameters(n_images: int, seed: int, image_size: int) -> dict:
    return {"n_images": int(n_images), "seed": int(seed), "image_size": int(image_size), "version": GENERATOR_VERSION}


def _params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _read_manifest(root: Path, params: dict) -> Dataset | None:
    try:
        manifest = json.loads((root / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("parameters") != params:
        return None  # not a mapping, or other parameters: the set is drawn again
    try:
        samples = [
            Sample(str(root / s["image"]), tuple(s["captions"]), s["label"], s["split"])
            for s in manifest.get("samples", [])
        ]
    except (KeyError, TypeError):
        return None
    if len(samples) != params["n_images"] or not all(os.path.isfile(s.image) for s in samples):
        return None
    return Dataset(samples, "demo")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def plan_demo_set(n_images: int, seed: int = 0) -> list[dict]:
    """Attributes of each demo image: gem types cycle evenly, the rest is drawn per image."""
    gems = list(GEMS)
    order = np.random.default_rng([seed, 1]).permutation(len(gems))
    plan = []
    for i in range(n_images):
        rng = np.random.default_rng([seed, 2, i])
        setting = SETTINGS[int(rng.integers(len(SETTINGS)))]
        plan.append(
            {
                "gem": gems[order[i % len(gems)]],
                "cut": CUTS[int(rng.integers(len(CUTS)))],
                "setting": setting,
                "metal": list(METALS)[int(rng.integers(len(METALS)))],
            }
        )
    return plan


def make_demo_set(
    root: PathLike | None = None, n_images: int = 480, seed: int = 0, image_size: int = 224, progress: bool = False
) -> Dataset:
    """The synthetic jewellery set (see the module docstring), written to ``root`` once and reused.

    ``root`` defaults to ``cache_dir("demo", <hash of n_images, seed, image_size>)``. The default
    480 images at 224 px let a small captioner train in about a minute on two CPU cores.
    """
    from tqdm.auto import tqdm

    if n_images < 1:
        raise ConfigError(f"n_images must be at least 1, got {n_images}")
    if image_size < 32:
        raise ConfigError(f"image_size must be at least 32, got {image_size}")
    params = demo_parameters(n_images, seed, image_size)
    root = Path(root) if root is not None else cache_dir("demo", _params_hash(params))
    root.mkdir(parents=True, exist_ok=True)
    cached = _read_manifest(root, params)
    if cached is not None:
        return cached
    plan = plan_demo_set(n_images, seed)
    names = [f"demo_{i:04d}_{p['gem']}_{p['cut']}_{p['setting']}.png" for i, p in enumerate(plan)]
    split_of = assign_splits(
        names, list(SPLIT_FRACTIONS.values()), list(SPLIT_FRACTIONS), seed, [p["gem"] for p in plan]
    )
    records = []
    for i, (p, name) in enumerate(tqdm(list(zip(plan, names)), desc="Drawing demo images", disable=not progress)):
        rng = np.random.default_rng([seed, 3, i])
        image = render_jewel(p["gem"], p["cut"], p["setting"], p["metal"], image_size, rng)
        atomic_write_bytes(root / name, _png_bytes(image))
        captions = list(captions_for(p["gem"], p["cut"], p["setting"], p["metal"], rng))
        records.append(
            {
                "image": name,
                "captions": captions,
                "label": p["gem"],
                "split": split_of[name],
                **{k: p[k] for k in ("cut", "setting", "metal")},
            }
        )
    text = json.dumps({"parameters": params, "samples": records}, indent=1)
    atomic_write_text(root / "demo.json", text)
    return Dataset(
        [Sample(str(root / r["image"]), tuple(r["captions"]), r["label"], r["split"]) for r in records], "demo"
    )
