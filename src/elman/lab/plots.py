"""matplotlib for the lab's figures, imported only when a figure is drawn (Agg backend:
no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elman.errors import ElmanError
from elman.files import atomic_open


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
    try:
        with atomic_open(path, "wb") as f:  # never a torn image in place of an older one
            fig.savefig(f, dpi=90, bbox_inches="tight", format=path.suffix[1:].lower() or "png")
    except ValueError as err:  # a format matplotlib cannot write (the suffix)
        raise ElmanError(
            f"{path}: cannot write the figure ({err}); use .png, .pdf or .svg"
        ) from None
    finally:
        pyplot().close(fig)
    return path
