"""A signed-in Pennsieve user's side: Cognito sign-in, the private API, the upload service and
S3-compatible storage for uploads (see ``WORKSPACE.md``).

``routes`` carry their full paths and are added at the root of the app by
:func:`sparc.sandbox.server.create_app`, which then calls ``install(app)``.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []


def install(app: Any) -> None:
    """Set up the service's state on ``app.state``."""
