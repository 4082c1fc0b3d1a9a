"""The gemcaption command's error contract: every GemcaptionError is one stderr line and status 2."""

import argparse

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
