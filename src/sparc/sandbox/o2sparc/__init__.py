"""The o²S²PARC api-server emulation, served under ``/v0/`` (see ``O2SPARC.md``).

``routes`` are mounted at ``/v0`` by :func:`sparc.sandbox.server.create_app`, which then calls
``install(app)`` to set up this service's state on ``app.state`` (``app.state.o2sparc``). Jobs run
as asyncio tasks on the server's loop, started by ``:start``; nothing runs at import or install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparc.sandbox import faults
from sparc.sandbox.o2sparc import errors
from sparc.sandbox.o2sparc.routes import routes
from sparc.sandbox.o2sparc.state import STORAGE_PREFIX, O2State

__all__ = ["install", "routes"]


def install(app: Any) -> None:
    """Set up the service's state on ``app.state`` and its fault error bodies (ErrorGet; S3 XML for storage)."""
    settings = app.state.settings
    app.state.o2sparc = O2State(Path(settings.data_dir) / "o2sparc", settings.url_expiry,
                                settings.time_scale)
    faults.register_error_body("/v0/", errors.fault_body)
    faults.register_error_body(STORAGE_PREFIX, faults.s3_error_body)
