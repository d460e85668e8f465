"""matplotlib for the lab's figures, imported only when a figure is drawn (Agg backend:
no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elman.errors import ElmanError


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        raise ElmanError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a small PNG and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=90, bbox_inches="tight")
    except OSError as err:
        raise ElmanError(f"{path}: cannot write the figure ({err.strerror or err})") from None
    finally:
        pyplot().close(fig)
    return path
