"""Global CLI conventions: --version, -q before or after the command, one-line warnings."""

import subprocess
import sys

import pytest

from gemcaption import __version__
from gemcaption.cli import build_parser, main


def test_version_prints_the_release_on_stdout(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
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


def test_quiet_silences_tensorflow_cpp_logging():
    done = _run(
        "import os\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0'\n"
        "from gemcaption.cli import configure_output\n"
        "configure_output(quiet=True)\n"
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
    )
    assert done.stdout.strip() == "3"
