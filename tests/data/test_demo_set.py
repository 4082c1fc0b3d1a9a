import os
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from gemcaption.data.demo_set import CUTS, GEMS, SETTINGS, make_demo_set, render_jewel
from gemcaption.data.loaders import load_dataset


def test_demo_set_is_deterministic_and_reused(tmp_path):
    first = make_demo_set(tmp_path / "a", n_images=18, seed=5, image_size=64)
    second = make_demo_set(tmp_path / "b", n_images=18, seed=5, image_size=64)
    assert len(first) == 18
    assert [s.captions for s in first] == [s.captions for s in second]
    assert [s.split for s in first] == [s.split for s in second]
    for a, b in zip(first, second):
        assert Path(a.image).read_bytes() == Path(b.image).read_bytes()
    mtime = os.path.getmtime(first[0].image)
    again = make_demo_set(tmp_path / "a", n_images=18, seed=5, image_size=64)
    assert os.path.getmtime(again[0].image) == mtime  # files reused, not redrawn
    assert [s.captions for s in again] == [s.captions for s in first]


def test_other_seed_gives_other_images(tmp_path):
    a = make_demo_set(tmp_path / "a", n_images=6, seed=0, image_size=48)
    b = make_demo_set(tmp_path / "b", n_images=6, seed=1, image_size=48)
    assert any(Path(x.image).read_bytes() != Path(y.image).read_bytes() for x, y in zip(a, b))


def test_demo_labels_captions_splits(tmp_path):
    dataset = make_demo_set(tmp_path, n_images=60, seed=0, image_size=48)
    assert dataset.labels == sorted(GEMS)
    assert Counter(s.label for s in dataset) == {gem: 10 for gem in GEMS}
    assert Counter(s.split for s in dataset) == {"train": 42, "val": 9, "test": 9}
    for sample in dataset:
        assert 3 <= len(sample.captions) <= 5 and len(set(sample.captions)) == len(sample.captions)
        colour = GEMS[sample.label][0]
        text = " ".join(sample.captions)
        assert sample.label in text or colour in text
        assert any(cut in text for cut in CUTS)
        image = Image.open(sample.image)
        assert image.size == (48, 48) and image.mode == "RGB"
    assert "rubies" not in " ".join(" ".join(s.captions) for s in dataset if s.label != "ruby")


def test_demo_images_are_not_identical(tmp_path):
    dataset = make_demo_set(tmp_path, n_images=12, seed=0, image_size=48)
    digests = {Path(s.image).read_bytes() for s in dataset}
    assert len(digests) == 12


def test_gem_colours_are_visible():
    """The centre of a loose gem is dominated by its colour channel."""
    rng = np.random.default_rng(0)
    ruby = np.asarray(render_jewel("ruby", "round", "loose", "gold", 64, rng)).astype(int)
    sapphire = np.asarray(render_jewel("sapphire", "round", "loose", "gold", 64, rng)).astype(int)
    emerald = np.asarray(render_jewel("emerald", "round", "loose", "silver", 64, rng)).astype(int)
    centre = (slice(26, 38), slice(26, 38))
    assert ruby[centre][..., 0].mean() > ruby[centre][..., 2].mean() + 60
    assert sapphire[centre][..., 2].mean() > sapphire[centre][..., 0].mean() + 60
    assert emerald[centre][..., 1].mean() > emerald[centre][..., 0].mean() + 40


def test_every_cut_and_setting_renders_differently():
    rng = lambda: np.random.default_rng(7)
    cuts = {cut: np.asarray(render_jewel("emerald", cut, "loose", "gold", 48, rng())).tobytes() for cut in CUTS}
    settings = {s: np.asarray(render_jewel("emerald", "oval", s, "gold", 48, rng())).tobytes() for s in SETTINGS}
    assert len(set(cuts.values())) == len(CUTS)
    assert len(set(settings.values())) == len(SETTINGS)


def test_load_dataset_demo_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMCAPTION_CACHE", str(tmp_path))
    dataset = load_dataset("demo:12", split="train")
    assert dataset.splits == ["train"] and 0 < len(dataset) < 12
    assert str(tmp_path) in dataset[0].image
