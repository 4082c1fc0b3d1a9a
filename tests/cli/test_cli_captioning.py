import csv
import json

import pytest

from gemcaption.cli import main
from fakes import write_shapes


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    rows = write_shapes(root / "images", per_kind=2, size=64)
    with open(root / "captions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption", "split"])
        for i, (path, captions, _) in enumerate(rows):
            for caption in captions:
                writer.writerow([f"images/{path.rsplit('/', 1)[1]}", caption, "val" if i % 4 == 0 else "train"])
    return root


def test_train_then_caption_as_json(catalogue, tmp_path, capsys):
    out = tmp_path / "model"
    code = main(["-q", "train", "--data", f"csv:{catalogue / 'captions.csv'}", "--decoder", "lstm", "--out", str(out),
                 "--epochs", "2", "--batch-size", "8", "--image-size", "64", "--embed-dim", "16", "--ff-dim", "16"])
    assert code == 0
    assert capsys.readouterr().out.strip().endswith(str(out))
    assert (out / "config.json").is_file() and not (out / "checkpoint.weights.h5").exists()
    image = str(catalogue / "images" / "red_square_0.png")
    assert main(["-q", "caption", "--model", str(out), "--json", "--beam", "2", image]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in rows] == [image] and isinstance(rows[0]["caption"], str)


def test_caption_reports_unreadable_images(catalogue, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["-q", "train", "--data", f"csv:{catalogue / 'captions.csv'}", "--decoder", "transformer",
                 "--out", str(out), "--epochs", "1", "--image-size", "64", "--embed-dim", "16", "--ff-dim", "16"]) == 0
    bad = tmp_path / "bad.jpg"
    bad.write_text("no pixels here")
    capsys.readouterr()
    assert main(["-q", "caption", "--model", str(out), str(catalogue / "images" / "blue_circle_1.png"), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "blue_circle_1.png\t" in captured.out
    assert "bad.jpg" in captured.err


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "csv:/nonexistent/captions.csv", "--out", "x"], "nonexistent"),
    (["train", "--data", "demo", "--decoder", "gru", "--out", "x"], "unknown decoder"),
    (["caption", "--model", "/nonexistent/model", "a.jpg"], "not a gemcaption model"),
    (["train", "--data", "flickr8k:/nonexistent", "--out", "x"], "nonexistent"),
])
def test_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_empty_dataset_is_refused(tmp_path, capsys):
    manifest = tmp_path / "empty.csv"
    manifest.write_text("image,caption\n")
    assert main(["train", "--data", f"csv:{manifest}", "--out", str(tmp_path / "m")]) == 2
    assert "empty" in capsys.readouterr().err.lower()


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().err
