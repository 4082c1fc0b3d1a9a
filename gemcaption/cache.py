"""Where gemcaption keeps what it can recompute: features, converted weights, the demo set."""
import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$GEMCAPTION_CACHE`` or ``$XDG_CACHE_HOME/gemcaption`` (default ``~/.cache/gemcaption``), created."""
    root = os.environ.get("GEMCAPTION_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "gemcaption")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
