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
#: The ``export NAME=value`` lines ``sparc sandbox serve`` prints after its base URL, in order
#: (fixed interface: whatever starts the sandbox waits for all of them). Values: see
#: :func:`export_values`.
EXPORT_NAMES = (
    "PENNSIEVE_API_HOST", "PENNSIEVE_API2_HOST", "PENNSIEVE_COGNITO_ENDPOINT",
    "PENNSIEVE_S3_ENDPOINT", "PENNSIEVE_API_KEY", "PENNSIEVE_API_SECRET",
    "O2SPARC_HOST", "O2SPARC_USERNAME", "O2SPARC_PASSWORD",
)
#: Where each emulated service lives below the sandbox's base URL.
COGNITO_PATH = "/cognito"  # AWS Cognito Identity Provider (JSON 1.1, X-Amz-Target)
S3_PATH = "/s3"  # S3-compatible object storage for uploads (path-style)

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


def export_values(base: str, settings: SandboxSettings) -> dict[str, str]:
    """The environment that points every client command at a sandbox served at ``base``."""
    values = {
        "PENNSIEVE_API_HOST": base,
        "PENNSIEVE_API2_HOST": base,
        "PENNSIEVE_COGNITO_ENDPOINT": base + COGNITO_PATH,
        "PENNSIEVE_S3_ENDPOINT": base + S3_PATH,
        "PENNSIEVE_API_KEY": settings.api_key,
        "PENNSIEVE_API_SECRET": settings.api_secret,
        "O2SPARC_HOST": base,
        "O2SPARC_USERNAME": settings.api_key,
        "O2SPARC_PASSWORD": settings.api_secret,
    }
    assert tuple(values) == EXPORT_NAMES
    return values
