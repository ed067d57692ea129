"""Progress bars (tqdm, on stderr), which callers can switch off or force on.

``progress=None`` means: show bars when stderr is a terminal or in a Jupyter kernel (where
``tqdm.auto`` draws a widget). Example::

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


def byte_bar(total: int | None, desc: str, progress: bool | None, initial: int = 0) -> Any:
    """A tqdm bar counting bytes (a no-op bar when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, disable=not bars_enabled(progress), file=sys.stderr,
                leave=False, dynamic_ncols=True)

