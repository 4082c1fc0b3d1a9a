"""The shared fakes of the test suite: tiny drawn images with known captions, and a captioner
that describes an image by its colour (so retrieval, web and CLI tests need no trained model)."""

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gemcaption.errors import ImageError, ModelError

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle")


def draw(colour: str, shape: str, size: int = 32, shift: int = 0) -> Image.Image:
    image = Image.new("RGB", (size, size), (245, 245, 245))
    d = ImageDraw.Draw(image)
    box = (4 + shift, 4 + shift, size - 5 + shift // 2, size - 5 + shift // 2)
    (d.rectangle if shape == "square" else d.ellipse)(box, fill=COLOURS[colour])
    return image


def write_shapes(root: Path, per_kind: int = 3, size: int = 32):
    """Images ``<colour>_<shape>_<i>.png`` in ``root`` and their captions: [(path, [captions], label)]."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for colour in COLOURS:
        for shape in SHAPES:
            for i in range(per_kind):
                path = root / f"{colour}_{shape}_{i}.png"
                draw(colour, shape, size, shift=i).save(path)
                rows.append((str(path), [f"a {colour} {shape}", f"a {shape} in {colour}"], colour))
    return rows


def write_catalogue(root: Path, per_kind: int = 2, size: int = 32, val_every: int | None = 4) -> Path:
    """A CSV catalogue ``root/captions.csv`` of :func:`write_shapes` drawings in ``root/images``: one row
    per caption; with ``val_every`` a ``split`` column puts every ``val_every``-th image in "val"."""
    rows = write_shapes(root / "images", per_kind=per_kind, size=size)
    with open(root / "captions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"] + (["split"] if val_every else []))
        for i, (path, captions, _) in enumerate(rows):
            split = (["val" if i % val_every == 0 else "train"]) if val_every else []
            for caption in captions:
                writer.writerow([f"images/{path.rsplit('/', 1)[1]}", caption, *split])
    return root / "captions.csv"


def make_image(path, rgb, seed, size=16):
    noise = np.random.default_rng(seed).integers(0, 12, (size, size, 3))
    pixels = np.clip(np.array(rgb)[None, None, :] + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def png_bytes(color, size=16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, "PNG")
    return buffer.getvalue()


class FakeCaptioner:
    """Stands in for gemcaption.captioning.captioner.Captioner: describes the dominant colour and brightness."""

    def __init__(self):
        self.calls = 0

    def _describe(self, image) -> str:
        pixels = np.asarray(image, np.float32).reshape(-1, 3).mean(axis=0)
        colour = ["red", "green", "blue"][int(np.argmax(pixels))]
        return f"a {'bright' if pixels.max() > 150 else 'dark'} {colour} stone"

    def caption(self, images, beam_width=1, **kwargs):
        from gemcaption.data.images import load_image

        self.calls += 1
        self.last_options = {"beam_width": beam_width, **kwargs}
        out = []
        for source in images:
            try:
                out.append(self._describe(load_image(source)))
            except ImageError:
                out.append(None)
        return out

    def image_features(self, images, **kwargs):
        from gemcaption.data.images import load_image

        rows = []
        for source in images:
            pixels = np.asarray(load_image(source), np.float32).reshape(-1, 3)
            rows.append(np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)]))
        return np.stack(rows).astype(np.float32)

    def save(self, directory):
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "config.json").write_text(json.dumps({"format": "fake-captioner"}))

    @classmethod
    def load(cls, directory):
        if not (Path(directory) / "config.json").is_file():
            raise ModelError(f"{directory}: no model")
        return cls()


# A captioner small enough to train in seconds on 64 px drawn images (Captioner(kind, **TINY_CAPTIONER)).
TINY_CAPTIONER = dict(
    encoder="efficientnet_lite0",
    image_size=64,
    weights="imagenet",
    embed_dim=32,
    ff_dim=32,
    num_heads=2,
    seq_len=8,
    dropout=0.0,
    seed=3,
)
