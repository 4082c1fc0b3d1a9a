"""docs/cli.md documents every command and every option of the parser (walked from build_parser())."""

import argparse
import re
from pathlib import Path

from gemcaption.cli import build_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
GLOBAL = {"-h", "--help", "-q", "--quiet", "--version"}


def commands(parser: argparse.ArgumentParser, words=("gemcaption",)):
    """(command words, parser) of every command that runs something (the leaves of the tree)."""
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        yield " ".join(words), parser
        return
    for name, sub in nested[0].choices.items():
        yield from commands(sub, (*words, name))


def sections(text: str) -> dict[str, str]:
    """``{"gemcaption train": its section's text}`` from the ``### gemcaption ...`` headings."""
    found = {}
    for match in re.finditer(r"^### (gemcaption[^\n]*)\n(.*?)(?=^##|\Z)", text, re.M | re.S):
        found[match.group(1).strip()] = match.group(2)
    return found


def mentioned(option: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def missing_options(parser: argparse.ArgumentParser | None = None) -> list[str]:
    """``"gemcaption train: --limit"`` for each option that its command's section does not name."""
    documented = sections(DOC.read_text(encoding="utf-8"))
    missing = []
    for name, command in commands(parser or build_parser()):
        section = documented.get(name)
        if section is None:
            missing.append(f"{name}: no '### {name}' section")
            continue
        for action in command._actions:
            strings = [s for s in action.option_strings if s not in GLOBAL]
            if strings and not any(mentioned(s, section) for s in strings):
                missing.append(f"{name}: {'/'.join(strings)}")
    return missing


def test_every_option_of_every_command_is_in_docs_cli_md():
    missing = missing_options()
    assert not missing, "docs/cli.md does not document:\n  " + "\n  ".join(missing)


def test_the_global_options_are_documented():
    text = DOC.read_text(encoding="utf-8")
    assert all(mentioned(option, text) for option in ("--version", "-q", "--quiet"))


def test_the_check_lists_an_undocumented_option_and_command():
    parser = build_parser()
    train = next(command for name, command in commands(parser) if name == "gemcaption train")
    train.add_argument("--not-documented-anywhere", type=int)
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    top.add_parser("brand-new").add_argument("--x")
    missing = missing_options(parser)
    assert "gemcaption train: --not-documented-anywhere" in missing
    assert "gemcaption brand-new: no '### gemcaption brand-new' section" in missing
    assert not any(entry.startswith("gemcaption train: --epochs") for entry in missing)
