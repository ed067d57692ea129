"""sparc.client: the Python client for the NIH SPARC data ecosystem.

Example::

    from sparc.client import SparcClient

    client = SparcClient(connect=False, config_file="config.ini")
    client.pennsieve.list_datasets(query="cancer", limit=2)

Names are imported lazily so that ``import sparc.client`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sparc.client._download import DownloadResult, FileResult
    from sparc.client.client import SparcClient
    from sparc.client.config import Config
    from sparc.client.errors import *  # noqa: F403

# The library never prints: without the application's own logging set-up, records go nowhere.
logging.getLogger("sparc.client").addHandler(logging.NullHandler())

_LAZY = {"SparcClient": "sparc.client.client", "Config": "sparc.client.config",
         "DownloadResult": "sparc.client._download", "FileResult": "sparc.client._download"}
_ERRORS = "sparc.client.errors"

__all__ = ["SparcClient", "Config", "DownloadResult", "FileResult", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "__version__":
        from sparc.client._version import package_version

        return package_version()
    errors = importlib.import_module(_ERRORS)
    if name in errors.__all__:
        return getattr(errors, name)
    raise AttributeError(f"module 'sparc.client' has no attribute {name!r}")
