"""Progress bars (tqdm, on stderr), which callers can switch off or force on.

``progress=None`` means: show bars when stderr is a terminal or in a Jupyter kernel (where
``tqdm.auto`` draws a widget). tqdm is imported only when a bar is really drawn: a disabled bar
is a :class:`NoBar`, which costs nothing. Example::

    with byte_bar(total=1024, desc="file.csv", progress=True) as bar:
        bar.update(512)
"""

from __future__ import annotations

import sys
from typing import Any


def bars_enabled(progress: bool | None) -> bool:
    """Resolve the ``progress`` argument: ``None`` -> when stderr is a TTY or in Jupyter."""
    if progress is None:
        return "ipykernel" in sys.modules or bool(getattr(sys.stderr, "isatty", lambda: False)())
    return progress


class NoBar:
    """A progress bar that draws nothing (what ``byte_bar`` gives when bars are off).

    Example: ``with NoBar() as bar: bar.update(10)`` does nothing, without importing tqdm.
    """

    disable = True
    n: float = 0

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        return None

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        return None

    def refresh(self) -> None:
        return None

    def close(self) -> None:
        return None


def byte_bar(total: int | None, desc: str, progress: bool | None, initial: int = 0) -> Any:
    """A tqdm bar counting bytes, or a :class:`NoBar` (tqdm not even imported) when disabled."""
    return _bar(progress, total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024)


def step_bar(total: int, desc: str, progress: bool | None, unit: str = "step",
             **options: Any) -> Any:
    """A tqdm bar counting steps of a task (``options``: more tqdm arguments, e.g.
    ``leave=True``), or a :class:`NoBar` when disabled.

    Example: ``with step_bar(3, "zinc mesh.exf", progress=None) as bar: bar.update(1)``.
    """
    return _bar(progress, total=total, desc=desc, unit=unit, **options)


def _bar(progress: bool | None, **options: Any) -> Any:
    if not bars_enabled(progress):
        return NoBar()
    from tqdm.auto import tqdm

    return tqdm(**{"disable": False, "file": sys.stderr, "leave": False, "dynamic_ncols": True,
                   **options})
