"""The demo: ``gemcaption demo`` end to end on the built-in synthetic set, and its HTML report.

``run`` trains a small captioner, captions held-out images, builds an index, searches it and
evaluates everything with chance levels; ``report`` renders the self-contained HTML page.
"""

from .run import run_demo

__all__ = ["run_demo"]
