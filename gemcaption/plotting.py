"""The one matplotlib set-up of gemcaption: pictures are drawn off-screen (Agg) and saved atomically.

matplotlib is imported on the first call of :func:`pyplot`, never when gemcaption is imported, and
the Agg backend is selected then, so plots work on servers without a display. Every picture
(training curves, confusion matrices, VAE grids, the demo report's loss curve) is drawn through it:

>>> plt = pyplot()
>>> figure, axes = plt.subplots(figsize=(4, 3))
>>> axes.plot([1, 2, 3])
>>> save_png(figure, "out/curve.png", dpi=80)   # written atomically, figure closed
"""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType
from typing import Any

from .persistence import PathLike, atomic_write_bytes


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (imported and set up on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(figure: Any, dpi: float | None = None, close: bool = True) -> bytes:
    """The PNG bytes of a matplotlib ``figure``; with ``close`` the figure is closed afterwards."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        if close:
            pyplot().close(figure)
    return buffer.getvalue()


def save_png(figure: Any, path: PathLike, dpi: float | None = None, close: bool = True) -> Path:
    """Write ``figure`` to ``path`` as a PNG atomically (the old file or the new one, never a part)."""
    return atomic_write_bytes(path, figure_png(figure, dpi=dpi, close=close))
