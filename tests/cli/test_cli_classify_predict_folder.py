"""``gemcaption classify predict`` on a folder holding a bad file: the others are still predicted."""

import json

import numpy as np
from PIL import Image

from gemcaption.cli import main

CLASSES = {"Ruby": (200, 30, 50), "Emerald": (30, 170, 80), "Sapphire Blue": (40, 60, 200)}


def write_gems(root, per_class=10, seed=0):
    rng = np.random.default_rng(seed)
    for label, colour in CLASSES.items():
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (32, 32, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / label / f"{i}.png")


def test_predict_a_folder_with_a_bad_file(tmp_path, capsys):
    write_gems(tmp_path / "gems")
    model = tmp_path / "model"
    assert (
        main(["-q", "classify", "train", "--data", str(tmp_path / "gems"), "--model", "rf", "--out", str(model)]) == 0
    )
    saved = json.loads((model / "manifest.json").read_text())["config"]
    assert saved["calibration"]["temperature"] > 0 and saved["open_set"]["score"] == "class_mean_cosine"
    assert (model / "open_set.npz").is_file()
    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    rng = np.random.default_rng(7)
    for label, path in (("Ruby", photos / "ruby.png"), ("Emerald", photos / "more" / "emerald.png")):
        pixels = np.clip(np.array(CLASSES[label]) + rng.normal(0, 20, (32, 32, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(path)
    (photos / "broken.jpg").write_bytes(b"not an image at all")
    (photos / "notes.txt").write_text("ignored: not an image file name")
    capsys.readouterr()
    code = main(["-q", "classify", "predict", "--model", str(model), "--json", "--top-k", "2", str(photos)])
    captured = capsys.readouterr()
    assert code == 1
    rows = json.loads(captured.out)
    assert [row["image"] for row in rows] == [str(photos / "more" / "emerald.png"), str(photos / "ruby.png")]
    assert [row["label"] for row in rows] == ["Emerald", "Ruby"]
    for row in rows:
        assert set(row) == {"image", "label", "probability", "unknown", "top_k", "description"}
        assert 0 < row["probability"] <= 1 and len(row["top_k"]) == 2 and isinstance(row["unknown"], bool)
        assert row["description"]
    assert "broken.jpg" in captured.err and "notes.txt" not in captured.err
    assert "1 of 3 inputs failed" in captured.err


def test_predict_files_all_good_exits_0_and_empty_folder_fails(tmp_path, capsys):
    write_gems(tmp_path / "gems", per_class=8)
    model = tmp_path / "model"
    assert (
        main(["-q", "classify", "train", "--data", str(tmp_path / "gems"), "--model", "rf", "--out", str(model)]) == 0
    )
    image = str(tmp_path / "gems" / "Ruby" / "1.png")
    capsys.readouterr()
    assert main(["-q", "classify", "predict", "--model", str(model), image]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: ")
    (tmp_path / "empty").mkdir()
    assert main(["-q", "classify", "predict", "--model", str(model), image, str(tmp_path / "empty")]) == 1
    captured = capsys.readouterr()
    assert "no image files" in captured.err and captured.out.startswith(f"{image}: ")
