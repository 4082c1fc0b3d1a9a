"""The gemcaption command's error contract: every GemcaptionError is one stderr line and status 2."""

import argparse
import json

import pytest

import gemcaption.cli as cli
from gemcaption.errors import ConfigError, DatasetError, GemcaptionError, ModelError, UnknownNameError


def parser_raising(error: BaseException):
    def build():
        parser = argparse.ArgumentParser(prog="gemcaption")
        sub = parser.add_subparsers(dest="command")
        run = sub.add_parser("run")

        def fail(args):
            raise error

        run.set_defaults(func=fail)
        return parser

    return build


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("--epochs must be at least 1, got 0"),
        UnknownNameError("decoder", "gru", ["transformer", "lstm"]),
        DatasetError("data.csv: no usable rows"),
        ModelError("model: captioner format version 9 is not supported\nupgrade gemcaption"),
        GemcaptionError(""),
    ],
)
def test_a_gemcaption_error_is_one_line_and_status_2(monkeypatch, capsys, error):
    monkeypatch.setattr(cli, "build_parser", parser_raising(error))
    assert cli.main(["run"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gemcaption: error: ") and captured.out == ""
    if isinstance(error, UnknownNameError):
        assert lines[0] == "gemcaption: error: unknown decoder 'gru'; choose one of: transformer, lstm"
    if isinstance(error, ModelError):
        assert lines[0].endswith("is not supported; upgrade gemcaption")
    if not str(error):
        assert lines[0] == "gemcaption: error: GemcaptionError"


def test_an_error_while_building_the_parser_is_one_line_too(monkeypatch, capsys):
    def broken():
        raise ConfigError("registry of encoders is empty")

    monkeypatch.setattr(cli, "build_parser", broken)
    assert cli.main(["anything"]) == 2
    assert capsys.readouterr().err == "gemcaption: error: registry of encoders is empty\n"


def test_other_cases_keep_their_behaviour(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", parser_raising(FileNotFoundError(2, "No such file", "x.jpg")))
    assert cli.main(["run"]) == 2
    assert capsys.readouterr().err == "gemcaption: error: x.jpg: no such file or directory\n"
    monkeypatch.setattr(cli, "build_parser", parser_raising(KeyboardInterrupt()))
    assert cli.main(["run"]) == 130
    monkeypatch.setattr(cli, "build_parser", parser_raising(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["run"])
    monkeypatch.undo()
    assert cli.main([]) == 2 and "usage: gemcaption" in capsys.readouterr().err


# -- several images: each bad one reported in the same words, the rest processed, status 1 ----------


@pytest.fixture
def photos(tmp_path):
    from fakes import draw

    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    draw("red", "square").save(folder / "red.png")
    draw("blue", "circle").save(folder / "more" / "blue.png")
    (folder / ".hidden.png").write_bytes(b"left out: hidden")
    (folder / "notes.txt").write_text("left out: not an image name")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    (tmp_path / "empty").mkdir()
    return folder, broken, tmp_path / "missing.jpg", tmp_path / "empty"


@pytest.fixture
def fake_models(monkeypatch):
    """caption and classify predict over stand-in models (no training, no TensorFlow graph)."""
    from fakes import FakeCaptioner

    from gemcaption.captioning.captioner import Captioner
    from gemcaption.classification import GemClassifier
    from gemcaption.classification.classifier import Prediction
    from gemcaption.errors import ImageError

    class FakeClassifier:
        def predict_sources(self, sources, top_k=3):
            fake = FakeCaptioner()
            return [
                ImageError(f"{s}: not an image file (format not recognised)")
                if text is None
                else Prediction("Ruby", 0.9, [("Ruby", 0.9)])
                for s, text in zip(sources, fake.caption(sources))
            ]

    monkeypatch.setattr(Captioner, "load", classmethod(lambda cls, path, **kw: FakeCaptioner()))
    monkeypatch.setattr(GemClassifier, "load", classmethod(lambda cls, path, **kw: FakeClassifier()))


@pytest.mark.parametrize("command", [["caption"], ["classify", "predict"]])
def test_several_images_report_each_bad_one_in_the_same_words_and_exit_1(command, photos, fake_models, capsys):
    folder, broken, missing, empty = photos
    argv = ["-q", *command, "--model", "m", "--json", str(folder), str(broken), str(missing), str(empty)]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [row["image"] for row in rows] == [str(folder / "more" / "blue.png"), str(folder / "red.png")]
    assert captured.err.splitlines() == [
        f"gemcaption: error: {missing}: no such file or directory",
        f"gemcaption: error: {empty}: no image files in this folder",
        f"gemcaption: error: {broken}: not a readable image (not an image file (format not recognised))",
        "gemcaption: 3 of 5 inputs failed",
    ]


def test_a_missing_file_is_worded_as_every_other_command_words_it(capsys):
    from gemcaption.cli.inputs import missing_file

    def fail(args):
        raise FileNotFoundError(2, "No such file", "x.jpg")

    parser = argparse.ArgumentParser(prog="gemcaption")
    parser.add_subparsers(dest="command").add_parser("run").set_defaults(func=fail)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_parser", lambda: parser)
        assert cli.main(["run"]) == 2
    assert capsys.readouterr().err == f"gemcaption: error: {missing_file('x.jpg')}\n"
