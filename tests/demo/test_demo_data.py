"""`gemcaption demo --data SPEC`: the demo on the user's own dataset."""

import csv
import json

import pytest
from fakes import write_shapes

from gemcaption.cli import main
from gemcaption.demo import run as demo
from gemcaption.errors import ConfigError


def _catalogue(root, split_of=None):
    rows = write_shapes(root / "images", per_kind=3, size=32)  # 24 images
    with open(root / "captions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption", "label", "split"] if split_of else ["image", "caption"])
        for i, (path, captions, label) in enumerate(rows):
            name = f"images/{path.rsplit('/', 1)[1]}"
            for caption in captions:
                writer.writerow([name, caption, label, split_of(i)] if split_of else [name, caption])
    return f"csv:{root / 'captions.csv'}"


def test_data_without_splits_is_split_70_15_15_by_image(tmp_path):
    train, val, test, how = demo.demo_splits(_catalogue(tmp_path))
    assert (len(train), len(val), len(test)) == (17, 4, 3) and "70/15/15" in how
    assert not set(train.images) & set(test.images) and not set(val.images) & set(test.images)
    assert demo.demo_splits(_catalogue(tmp_path))[2].images == test.images  # seeded


def test_data_with_its_own_splits_keeps_them_and_limit_is_seeded(tmp_path):
    spec = _catalogue(tmp_path, split_of=lambda i: ("train", "train", "dev", "test")[i % 4])
    train, val, test, how = demo.demo_splits(spec)
    assert (len(train), len(val), len(test)) == (12, 6, 6) and "train / dev / test" in how
    limited = demo.demo_splits(spec, limit=12)
    assert [len(part) for part in limited[:3]] == [6, 3, 3] and limited[2].images == demo.demo_splits(spec, 12)[
        2
    ].images


def test_too_little_data_is_one_clear_error(tmp_path, capsys):
    spec = _catalogue(tmp_path)
    with pytest.raises(ConfigError, match="two test images"):
        demo.demo_splits(spec, limit=4)
    assert main(["demo", "--data", spec, "--images", "20"]) == 2
    assert main(["demo", "--limit", "5"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "--images" in lines[0] and "--limit" in lines[1]


@pytest.mark.slow  # trains a small captioner: over a minute on a loaded 2-core machine
def test_the_whole_demo_runs_on_unlabelled_user_data(tmp_path):
    spec = _catalogue(tmp_path)
    result = demo.run_demo(out=tmp_path / "report", epochs=1, quiet=True, image_size=32, data=spec)
    figures = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert figures["images"] == {"train": 17, "val": 4, "test": 3}
    assert figures["metrics"]["image_search_same_gem"] is None  # no labels: no same-label figures
    assert figures["metrics"]["text_search_exact_image"]["n_queries"] == 3
    html = result["report"].read_text(encoding="utf-8")
    assert "the images have no labels" in html and "synthetic (drawn" not in html
