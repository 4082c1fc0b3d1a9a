"""Global CLI conventions: --version, -q before or after the command, one-line warnings, one-line
bad arguments with status 2, defaults in every help text."""

import subprocess
import sys

import pytest

from gemcaption import __version__
from gemcaption.cli import build_parser, main


def test_version_prints_the_release_on_stdout(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gemcaption {__version__}"


@pytest.mark.parametrize(
    "argv, quiet",
    [
        (["index", "info", "IDX"], False),
        (["-q", "index", "info", "IDX"], True),
        (["index", "info", "IDX", "-q"], True),
        (["index", "info", "--quiet", "IDX"], True),
        (["search", "--index", "IDX", "--text", "ring", "-q"], True),
    ],
)
def test_quiet_is_accepted_before_or_after_the_command(argv, quiet):
    assert build_parser().parse_args(argv).quiet is quiet


def test_every_subcommand_accepts_quiet():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    seen = 0
    for name, sub in commands.items():
        nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
        leaves = list(nested[0].choices.values()) if nested else [sub]
        for leaf in leaves:
            assert any("--quiet" in a.option_strings for a in leaf._actions), name
            seen += 1
    assert seen >= 8


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)


def test_warnings_print_once_on_one_line_without_source():
    done = _run(
        "import warnings\n"
        "from gemcaption.cli import configure_output\n"
        "configure_output(quiet=False)\n"
        "for _ in range(3):\n"
        "    warnings.warn('the same thing', UserWarning)\n"
    )
    assert done.stderr == "gemcaption: warning: UserWarning: the same thing\n"


def test_only_gemcaptions_own_deprecation_warnings_reach_the_user():
    done = _run(
        "import warnings, types\n"
        "from gemcaption.cli import configure_output\n"
        "configure_output(quiet=False)\n"
        "library = types.ModuleType('somelibrary')\n"
        "exec('import warnings\\ndef call():\\n    warnings.warn(\"old API\", DeprecationWarning)', library.__dict__)\n"
        "library.call()\n"
        "ours = {'__name__': 'gemcaption.something'}\n"
        "exec('import warnings\\ndef call():\\n    warnings.warn(\"our old flag\", DeprecationWarning)', ours)\n"
        "ours['call']()\n"
    )
    assert done.stderr == "gemcaption: warning: DeprecationWarning: our old flag\n"


def test_quiet_silences_tensorflow_cpp_logging():
    done = _run(
        "import os\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0'\n"
        "from gemcaption.cli import configure_output\n"
        "configure_output(quiet=True)\n"
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
    )
    assert done.stdout.strip() == "3"


BAD_ARGUMENTS = [
    (["train", "--data", "demo", "--out", "x", "--epochs", "0"], "--epochs"),
    (["train", "--data", "demo", "--out", "x", "--epochs", "many"], "--epochs"),
    (["train", "--data", "demo", "--out", "x", "--batch-size", "-4"], "--batch-size"),
    (["train", "--data", "demo", "--out", "x", "--learning-rate", "0"], "--learning-rate"),
    (["train", "--data", "demo", "--out", "x", "--learning-rate", "nan"], "--learning-rate"),
    (["train", "--data", "demo", "--out", "x", "--warmup-fraction", "1.5"], "--warmup-fraction"),
    (["train", "--data", "demo", "--out", "x", "--patience", "-1"], "--patience"),
    (["train", "--data", "demo", "--out", "x", "--decoder", "gru"], "--decoder"),
    (["train", "--data", "demo", "--out", "x", "--decay", "step"], "--decay"),
    (["train", "--data", "demo", "--out", "x", "--image-size", "8"], "--image-size"),
    (["train", "--data", "demo", "--out", "x", "--limit", "0"], "--limit"),
    (["train", "--data", "demo"], "--out"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["demo", "--images", "3"], "--images"),
    (["demo", "--limit", "-1"], "--limit"),
    (["evaluate", "--model", "m", "--data", "demo", "--beam", "0"], "--beam"),
    (["evaluate", "--model", "m", "--data", "demo", "--limit", "0"], "--limit"),
    (["serve", "--index", "i", "--port", "70000"], "--port"),
    (["serve", "--index", "i", "-k", "0"], "-k"),
    (["serve", "--index", "i", "--max-upload-mb", "-1"], "--max-upload-mb"),
    (["serve", "--index", "i", "--max-decodes", "0"], "--max-decodes"),
    (["classify", "train", "--data", "d", "--out", "o", "--test-fraction", "1"], "--test-fraction"),
    (["classify", "train", "--data", "d", "--out", "o", "--epochs", "0"], "--epochs"),
    (["classify", "train", "--data", "d", "--out", "o", "--model", "bogus"], "--model"),
    (["classify", "predict", "--model", "m", "--top-k", "0", "a.jpg"], "--top-k"),
    (["caption", "--model", "m", "--beam", "0", "a.jpg"], "--beam"),
    (["caption", "--model", "m"], "IMAGE"),
    (["nonsense"], "nonsense"),
]


@pytest.mark.parametrize("argv, option", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_every_bad_argument_is_one_line_and_status_2(argv, option, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert option in lines[0] and "error" in lines[0] and "Traceback" not in lines[0]


def test_a_bad_argument_names_the_command_and_its_help(capsys):
    assert main(["train", "--data", "demo", "--out", "x", "--epochs", "0"]) == 2
    assert capsys.readouterr().err == (
        "gemcaption train: error: argument --epochs: must be at least 1, got 0 (see 'gemcaption train --help')\n"
    )


def _leaf_parsers(parser=None, prefix=("gemcaption",)):
    """(command words, parser) of every command that runs something."""
    parser = parser or build_parser()
    nested = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    if not nested:
        yield prefix, parser
        return
    for name, sub in nested[0].choices.items():
        yield from _leaf_parsers(sub, (*prefix, name))


def test_every_help_text_shows_the_defaults(capsys):
    for words, parser in _leaf_parsers():
        for action in parser._actions:
            shown = action.default not in (None, False, "==SUPPRESS==") and action.option_strings
            if shown and action.help != "==SUPPRESS==":
                text = parser.formatter_class(prog="x")._get_help_string(action) % {"default": action.default}
                assert "default" in text.lower(), (words, action.option_strings)
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: 64)" in " ".join(out.split()) and "{transformer," in out


def test_help_and_version_return_0_from_main(capsys):
    assert main(["caption", "--help"]) == 0
    assert "usage: gemcaption caption" in capsys.readouterr().out


def test_the_heap_settings_are_applied_unless_the_environment_sets_them(monkeypatch):
    import ctypes

    from gemcaption.heap import MALLOC_ARENAS, MMAP_THRESHOLD, TRIM_THRESHOLD, tune_heap

    for variable in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(variable, raising=False)
    if not hasattr(ctypes.CDLL(None), "mallopt"):
        assert tune_heap() == {}
        return
    everything = {"arena_max": MALLOC_ARENAS, "mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
    assert tune_heap() == everything
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the user's settings win (glibc read them at start)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")
    assert tune_heap() == {"trim_threshold": TRIM_THRESHOLD}
