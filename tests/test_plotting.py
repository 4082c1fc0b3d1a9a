"""gemcaption.plotting: matplotlib only on first use, on Agg, pictures saved atomically and closed."""

import subprocess
import sys

import pytest
from PIL import Image

from gemcaption.plotting import figure_png, pyplot, save_png


def test_matplotlib_is_imported_on_first_use_only():
    code = (
        "import sys, gemcaption.plotting, gemcaption.evaluation; print('matplotlib' in sys.modules); "
        "gemcaption.plotting.pyplot(); import matplotlib; print(matplotlib.get_backend().lower())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "agg"]


def test_save_png_writes_a_picture_and_closes_the_figure(tmp_path):
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(2, 1.5))
    axes.plot([1, 3, 2])
    path = save_png(figure, tmp_path / "sub" / "curve.png", dpi=50)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (100, 75)
    assert figure.number not in plt.get_fignums()


def test_a_failed_save_keeps_the_previous_picture(tmp_path, monkeypatch):
    plt = pyplot()
    path = tmp_path / "curve.png"
    first = plt.figure(figsize=(1, 1))
    save_png(first, path, dpi=20)
    before = path.read_bytes()
    second = plt.figure(figsize=(2, 2))

    def broken_savefig(*args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(second, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        save_png(second, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["curve.png"]
    assert second.number not in plt.get_fignums()  # closed even when saving failed
    assert figure_png(plt.figure(figsize=(1, 1)), dpi=10).startswith(b"\x89PNG")
