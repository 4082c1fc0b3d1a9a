"""`train` saves the split it used, `evaluate --split val` scores exactly those held-out images,
`--limit` is seeded, and `train` keeps Keras' progress off stdout."""

import io
import json
import sys

import pytest
from fakes import write_catalogue

from gemcaption.cli import main
from gemcaption.data.split_record import SPLIT_FILE, read_training_split
from gemcaption.data.splits import hold_out, limit_dataset
from gemcaption.data.types import Dataset, Sample

TINY = [
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--image-size",
    "32",
    "--embed-dim",
    "8",
    "--ff-dim",
    "8",
    "--weights",
    "none",
]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """A CSV catalogue without a split column (like the shared jewellery set): 16 images."""
    return write_catalogue(tmp_path_factory.mktemp("catalogue"), per_kind=2, size=32, val_every=None)


@pytest.fixture(scope="module")
def trained(catalogue, tmp_path_factory):
    """Trained without -q, so Keras' progress bar runs: (model directory, captured stdout)."""
    out = tmp_path_factory.mktemp("models") / "model"
    capture = pytest.MonkeyPatch()
    stdout, stderr = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", stdout)
    capture.setattr(sys, "stderr", stderr)
    try:
        code = main(
            ["train", "--data", f"csv:{catalogue}", "--out", str(out), "--decoder", "lstm", "--limit", "12", *TINY]
        )
    finally:
        capture.undo()
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue(), stderr.getvalue()


@pytest.mark.slow  # trains a model: about a minute on a loaded 2-core machine
def test_train_prints_only_the_model_directory_on_stdout(trained):
    out, stdout, stderr = trained
    assert stdout == f"{out}\n"
    assert "training lstm on" in stderr and "held out" in stderr


@pytest.mark.slow  # trains a model: about a minute on a loaded 2-core machine
def test_train_saves_the_exact_split_it_used(trained, catalogue):
    out, _, _ = trained
    record = read_training_split(out)
    assert set(record) == {"train", "val"}
    assert len(record["val"]) == 1 and len(record["train"]) == 11  # --limit 12, then 10 % (at least one) held out
    assert not set(record["val"]) & set(record["train"])
    payload = json.loads((out / SPLIT_FILE).read_text())
    assert payload["data"] == f"csv:{catalogue}" and payload["seed"] == 0 and payload["limit"] == 12
    assert not list(out.glob(f".{SPLIT_FILE}.*"))  # written atomically: no temporary left over


@pytest.mark.slow  # trains a model: about a minute on a loaded 2-core machine
def test_evaluate_split_val_scores_the_held_out_images(trained, catalogue, capsys):
    out, _, _ = trained
    capsys.readouterr()
    assert main(["-q", "evaluate", "--model", str(out), "--data", f"csv:{catalogue}", "--split", "val", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["split"] == "val" and figures["images"] == 1


@pytest.mark.slow  # trains a model: about a minute on a loaded 2-core machine
def test_evaluate_without_the_split_says_which_exist_and_how_to_get_one(trained, catalogue, capsys):
    out, _, _ = trained
    assert main(["evaluate", "--model", str(out), "--data", f"csv:{catalogue}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no split 'test'" in err and "train, val" in err and "--split" in err


def test_evaluate_on_a_model_without_a_saved_split_explains_how_to_get_one(catalogue, tmp_path, capsys):
    (tmp_path / "old-model").mkdir()
    assert (
        main(["evaluate", "--model", str(tmp_path / "old-model"), "--data", f"csv:{catalogue}", "--split", "val"]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its splits: train" in err and "split' column" in err and "gemcaption train" in err


def _dataset(n, splits=("train",)):
    return Dataset(
        [Sample(f"/d/{i}.jpg", ("a caption",), label=f"l{i % 2}", split=splits[i % len(splits)]) for i in range(n)]
    )


def test_limit_is_seeded_keeps_order_and_each_splits_share():
    data = _dataset(40, ("train", "train", "train", "test"))
    first, again, other = limit_dataset(data, 8, 0), limit_dataset(data, 8, 0), limit_dataset(data, 8, 1)
    assert first.images == again.images != other.images
    assert len(first) == 8 and first.images == sorted(first.images, key=data.images.index)
    assert sum(s.split == "test" for s in first) == 2
    assert limit_dataset(data, None, 0) is data and limit_dataset(data, 99, 0) is data


def test_hold_out_moves_a_tenth_to_val_and_at_least_one_image():
    held = hold_out(_dataset(30), 0.1, seed=3)
    assert [s.split for s in held].count("val") == 3
    assert [s.split for s in hold_out(_dataset(4), 0.1)].count("val") == 1
    assert hold_out(_dataset(1), 0.1).splits == ["train"]
    assert hold_out(_dataset(30), 0.1, seed=3).images == held.images


def test_split_record_round_trip_and_evaluate_uses_it(tmp_path):
    from gemcaption.cli.evaluation_split import split_to_evaluate
    from gemcaption.data.split_record import apply_training_split, save_training_split

    data = _dataset(10)
    parts = {"train": data[:8], "val": data[8:]}
    save_training_split(tmp_path, parts, data="csv:x.csv", seed=0, limit=None, validation="held out")
    record = read_training_split(tmp_path)
    assert record == {"train": data.images[:8], "val": data.images[8:]}
    applied = apply_training_split(data, record)
    assert [s.split for s in applied] == ["train"] * 8 + ["val"] * 2
    chosen = split_to_evaluate(data, "val", tmp_path)
    assert chosen.split("val").images == data.images[8:]
    assert len(split_to_evaluate(data, "val", tmp_path, limit=1).split("val")) == 1
    assert split_to_evaluate(data, "train", tmp_path) is data  # the dataset's own split comes first


def test_a_damaged_or_foreign_split_record_is_one_clear_error(tmp_path):
    from gemcaption.data.split_record import apply_training_split
    from gemcaption.errors import DatasetError, ModelError

    (tmp_path / SPLIT_FILE).write_text('{"format": "something else", "splits": {}}')
    with pytest.raises(ModelError, match="damaged"):
        read_training_split(tmp_path)
    (tmp_path / SPLIT_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="damaged"):
        read_training_split(tmp_path)
    assert read_training_split(tmp_path / "nowhere") is None
    with pytest.raises(DatasetError, match="none of the 3 images"):
        apply_training_split(_dataset(3), {"val": ["/elsewhere/a.jpg"]})
