"""The o²S²PARC api-server emulation, served under ``/v0/`` (see ``O2SPARC.md``).

``routes`` are mounted at ``/v0`` by :func:`sparc.sandbox.server.create_app`, which then calls
``install(app)`` to set up this service's state on ``app.state``.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []


def install(app: Any) -> None:
    """Set up the service's state on ``app.state``."""
