"""Who may read embargoed Discover data: the hook the Discover routes call (they live in
``sparc.sandbox.pennsieve``; this module only decides).

Production's ``authorizeIfUnderEmbargo`` (discover-service) lets a signed-in user read an
embargoed dataset's files when the user's data-use request was granted, answers 403 when it was
not, and 401 without a token. The sandbox user has been granted access to the datasets in
:data:`GRANTED` (seeded dataset 275, "Test Embargo dataset"); every other embargoed dataset is
refused. Example::

    decision = embargo_decision(request.app, request.headers.get("authorization"), 275)
    if decision in (SIGNED_OUT, INVALID_TOKEN): raise errors.embargoed()        # 401
    if decision == DENIED: raise DiscoverError(403, "forbidden")
    dto["embargoAccess"] = embargo_access(request.app, auth, 275)              # "Granted"
"""

from __future__ import annotations

from typing import Any

from sparc.sandbox.workspace.tokens import INVALID, signed_in_user

#: Embargoed Discover dataset ids whose data the sandbox user may read.
GRANTED = frozenset({275})

SIGNED_OUT, INVALID_TOKEN, GRANTED_ACCESS, DENIED = "signed_out", "invalid_token", "granted", "denied"


def embargo_decision(app: Any, authorization: str | None, dataset_id: int) -> str:
    """``"signed_out"`` / ``"invalid_token"`` (answer 401), ``"granted"`` or ``"denied"`` (403)."""
    user = signed_in_user(app, authorization)
    if user is None:
        return SIGNED_OUT
    if user is INVALID:
        return INVALID_TOKEN
    return GRANTED_ACCESS if dataset_id in GRANTED else DENIED


def embargo_access(app: Any, authorization: str | None, dataset_id: int) -> str | None:
    """The ``embargoAccess`` of a dataset DTO for this request: ``"Granted"`` for a signed-in user
    with access, else ``None`` (signed out, or no request on file)."""
    return "Granted" if embargo_decision(app, authorization, dataset_id) == GRANTED_ACCESS else None
