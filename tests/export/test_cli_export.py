"""``gemcaption export``: every bad argument is one error line and exit 2, found before the model
loads; an existing --out is refused unless --force, and --force replaces only an earlier export."""

import pytest

from gemcaption.captioning.captioner import Captioner
from gemcaption.cli import main
from gemcaption.errors import ConfigError, ModelError
from gemcaption.export import check_export_target, export_savedmodel, is_export_directory


def run(capsys, *argv):
    code = main(["export", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gemcaption: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--min-length", "0"], "min_length must be at least 1"),
        (["--max-length", "0"], "max_length must be at least 1"),
        (["--min-length", "4", "--max-length", "2"], "must not exceed max_length"),
    ],
)
def test_bad_lengths_fail_before_the_model_is_read(capsys, tmp_path, options, message):
    code, out, err = run(capsys, "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "out"), *options)
    assert code == 2 and out == ""
    assert message in one_error_line(err)


def test_an_existing_out_is_refused_without_force_and_a_foreign_one_even_with_it(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "--model", str(tmp_path / "no-model"), "--out", str(out))
    assert code == 2 and "already exists; use --force" in one_error_line(err)
    code, _, err = run(capsys, "--model", str(tmp_path / "no-model"), "--out", str(out), "--force")
    assert code == 2 and "is not a gemcaption SavedModel export" in one_error_line(err)
    assert (out / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "file"), "--force")
    assert code == 2 and "is not a directory" in one_error_line(err)


def test_force_accepts_an_empty_directory_or_an_earlier_export(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check_export_target(tmp_path / "empty", force=True) == tmp_path / "empty"
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "manifest.json").write_text('{"format": "gemcaption-savedmodel", "format_version": 1}')
    assert is_export_directory(earlier) and check_export_target(earlier, force=True) == earlier
    with pytest.raises(ModelError, match="already exists"):
        check_export_target(earlier)


def test_a_missing_model_is_one_line(capsys, tmp_path):
    code, out, err = run(capsys, "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "out"))
    assert code == 2 and out == "" and "no-model" in one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_an_unknown_format_is_an_argparse_error(capsys, tmp_path):
    code, _, err = run(capsys, "--model", "m", "--out", str(tmp_path / "o"), "--format", "onnx")
    assert code == 2 and "invalid choice: 'onnx'" in err and len(err.strip().splitlines()) == 1


def test_the_python_api_refuses_an_untrained_captioner_and_bad_lengths(tmp_path):
    with pytest.raises(ModelError, match="not trained"):
        export_savedmodel(Captioner("lstm"), tmp_path / "out")
    with pytest.raises(ConfigError):
        export_savedmodel(Captioner("lstm"), tmp_path / "out", min_length=0)
    assert not (tmp_path / "out").exists()
