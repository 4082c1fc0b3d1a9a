"""Tiny generated images with known captions, shared by the model tests."""
from pathlib import Path

from PIL import Image, ImageDraw

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
