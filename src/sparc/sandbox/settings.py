"""Every setting of one sandbox server and its default, in one place (no heavy imports, so the
CLI can show the defaults without loading the server). Example::

    SandboxSettings(time_scale=0, url_expiry=60)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_API_SECRET = "sandbox-secret"
#: The port ``sparc sandbox serve`` listens on unless told (the in-process server picks a free one).
DEFAULT_CLI_PORT = 8000


@dataclass(frozen=True)
class SandboxSettings:
    """Everything that configures one sandbox server."""

    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path | None = None
    api_key: str = DEFAULT_API_KEY
    api_secret: str = DEFAULT_API_SECRET
    url_expiry: int = 3600  # seconds a download (presigned) URL stays valid
    download_size_cap: int = 10 * 10**9  # bytes a download-manifest may total
    time_scale: float = 1.0  # multiplies every simulated delay (0 = none)
    archive_size_cap: int = 5 * 10**9  # zipit's cap
    whole_version_zip_cap: int = 10**9
    whole_version_zip_rate: float = 5e6  # bytes/s of the whole-version ZIP (x time_scale delays)
    faults: tuple[dict[str, Any], ...] = ()  # fault rules active at start (see faults.py)
    seed: int | None = None  # seeds the fault rules' rate draws; None = random

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of one setting (``SandboxSettings.default("url_expiry")`` -> 3600)."""
        return next(f.default for f in fields(cls) if f.name == name)

    def replace(self, **changes: Any) -> SandboxSettings:
        """A copy with ``changes``; ``None`` values keep the current setting."""
        return SandboxSettings(**{**self.__dict__,
                                  **{k: v for k, v in changes.items() if v is not None}})
