import subprocess
import sys

import gemcaption


def test_every_exported_name_resolves():
    for name in gemcaption.__all__:
        assert getattr(gemcaption, name) is not None, name


def test_import_does_not_load_tensorflow():
    code = "import sys, gemcaption; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unknown_attribute_is_an_attribute_error():
    try:
        gemcaption.NotAThing
    except AttributeError as exc:
        assert "NotAThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
