"""Every script in examples/ runs to completion in-process, with tiny settings on tiny generated data."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gemcaption import GemClassifier

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STONES = {"Ruby": (200, 20, 40), "Sapphire": (20, 50, 200), "Emerald": (20, 160, 60)}


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draw(path: Path, rgb, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.integers(-30, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def pieces(count: int):
    names = list(STONES)
    for i in range(count):
        stone = names[i % len(names)]
        yield i, stone, STONES[stone]


def test_every_example_has_a_test():
    tested = {"finetune_flickr8k", "finetune_catalogue", "search_with_retriever", "classify_gemstones"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.slow
def test_finetune_flickr8k(tmp_path, capsys):
    root = tmp_path / "flickr8k"
    rows, train, dev = ["image,caption"], [], []
    for i, stone, rgb in pieces(12):
        name = f"{i:04d}_{stone}.jpg"
        draw(root / "Images" / name, rgb, i)
        rows += [f"{name},a {stone.lower()} on a table", f"{name},a photo of a {stone.lower()}"]
        (train if i < 9 else dev).append(name)
    (root / "captions.txt").write_text("\n".join(rows) + "\n")
    (root / "Flickr_8k.trainImages.txt").write_text("\n".join(train) + "\n")
    (root / "Flickr_8k.devImages.txt").write_text("\n".join(dev) + "\n")
    out = tmp_path / "model"
    code = load_example("finetune_flickr8k").main(
        [
            "--data-dir",
            str(root),
            "--epochs",
            "1",
            "--limit",
            "8",
            "--image-size",
            "64",
            "--embed-dim",
            "32",
            "--batch-size",
            "4",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0 and (out / "manifest.json").is_file()  # a saved captioner directory
    printed = capsys.readouterr().out
    assert "dev split, 2 images: BLEU-1" in printed and "model saved to" in printed


@pytest.mark.slow
def test_finetune_catalogue(tmp_path, capsys):
    rows = ["image,caption,granularity"]
    for i, stone, rgb in pieces(10):
        draw(tmp_path / "shop" / "images" / f"p{i}.jpg", rgb, i)
        rows += [
            f"p{i}.jpg,Anillo de {stone.lower()},category",
            f"p{i}.jpg,Anillo de plata con {stone.lower()},material",
        ]
    csv = tmp_path / "shop" / "captions.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "model"
    code = load_example("finetune_catalogue").main(
        [
            "--csv",
            str(csv),
            "--epochs",
            "1",
            "--limit",
            "10",
            "--image-size",
            "64",
            "--embed-dim",
            "32",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0 and (out / "vocabulary.json").is_file()
    printed = capsys.readouterr().out
    assert "val: 2 images, BLEU-1" in printed and "generated:" in printed and "Anillo" in printed
    assert (out / "space" / "space.keras").is_file() and "caption space: best epoch" in printed


@pytest.mark.slow
def test_search_with_retriever(tmp_path, capsys):
    rows = ["image,caption"]
    for i, stone, rgb in pieces(15):
        draw(tmp_path / "set" / f"{stone}{i}.png", rgb, i)
        rows.append(f"{stone}{i}.png,a {stone.lower()} ring")
    (tmp_path / "set" / "list.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "index"
    code = load_example("search_with_retriever").main(
        [
            "--data",
            f"csv:{tmp_path / 'set' / 'list.csv'}",
            "--epochs",
            "1",
            "--limit",
            "15",
            "--image-size",
            "64",
            "--text",
            "a ruby ring",
            "-k",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0 and (out / "metadata.sqlite").is_file()
    printed = capsys.readouterr().out
    assert "indexed 3 images (learned caption space)" in printed and 'text query "a ruby ring":' in printed
    assert "image query" in printed and printed.count("  1. ") == 2


def test_classify_gemstones(tmp_path, capsys):
    for i, stone, rgb in pieces(18):
        draw(tmp_path / "gems" / stone / f"{i}.jpg", rgb, i)
    out = tmp_path / "classifier"
    code = load_example("classify_gemstones").main(
        ["--data-dir", str(tmp_path / "gems"), "--model", "rf", "--limit", "5", "--out", str(out), "--quiet"]
    )
    assert code == 0 and (out / "manifest.json").is_file()
    assert GemClassifier.load(out).labels == sorted(STONES)  # the saved classifier loads back
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "(chance 0.333)" in printed
    accuracy = float(printed.split("test accuracy ")[1].split()[0])
    assert accuracy == pytest.approx(1.0)  # three flat colours: any sane classifier separates them
