"""A signed-in Pennsieve user's side: Cognito sign-in, the private API, the upload service and
S3-compatible storage for uploads (see ``WORKSPACE.md``).

``routes`` carry their full paths and are added at the root of the app by
:func:`sparc.sandbox.server.create_app`, which then calls ``install(app)``. Example::

    from sparc.sandbox.workspace.tokens import signed_in_user
    user = signed_in_user(app, request.headers.get("authorization"))
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.routing import BaseRoute

from sparc.sandbox import faults
from sparc.sandbox.settings import COGNITO_PATH, S3_PATH
from sparc.sandbox.workspace import api, control, storage, tokens, upload
from sparc.sandbox.workspace.models import Workspace

routes: list[BaseRoute] = [*tokens.routes, *api.routes, *upload.routes, *storage.routes, *control.routes]


def install(app: Any) -> None:
    """Set up the service's state on ``app.state`` (S3 storage starts on first use)."""
    settings = app.state.settings
    app.state.workspace_tokens = tokens.Tokens(settings.api_key, settings.api_secret)
    bucket = f"pennsieve-sandbox-storage-use1-{secrets.token_hex(4)}"
    app.state.workspace = Workspace(app.state.workspace_tokens.user, bucket)
    app.state.workspace_storage = storage.Storage(bucket)
    faults.register_error_body(COGNITO_PATH, tokens.cognito_error_body)
    faults.register_error_body("/upload/", upload.upload_error_body)
    faults.register_error_body(S3_PATH + "/", faults.s3_error_body)
    for prefix in ("/authentication/", "/user", "/datasets", "/data/"):
        faults.register_error_body(prefix, api.api_error_body)
