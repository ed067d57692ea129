"""Pennsieve sign-in with an API key and secret, as production does it, and the bearer token.

1. ``GET {api}/authentication/cognito-config`` (no auth) names the Cognito region and the token
   pool's app client;
2. Cognito ``InitiateAuth`` (``USER_PASSWORD_AUTH``, AWS JSON 1.1, key as user name, secret as
   password) at ``https://cognito-idp.{region}.amazonaws.com/`` (or ``pennsieve_cognito_endpoint``);
3. every private call sends ``Authorization: Bearer <AccessToken>`` and ``X-ORGANIZATION-ID``
   (the IdToken's ``custom:organization_node_id``).

:class:`PennsieveAuth` is an ``httpx.Auth``: the service binds it to the Pennsieve hosts (a
:class:`~sparc.client._http.HostBoundAuth`), so the token never goes anywhere else. It signs
in again five minutes before the token expires, and once when a call answers 401. The secret
and the tokens never appear in a repr, a log line or an error. Example::

    auth = PennsieveAuth(http, config)
    auth.sign_in().organization_node_id      # 'N:organization:...'
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from sparc.client._http import HttpCore, is_loopback
from sparc.client.config import Config
from sparc.client.errors import (
    ApiError,
    AuthenticationError,
    InsecureTransportError,
    MissingCredentialsError,
    ServerError,
)

__all__ = ["PennsieveAuth", "PennsieveSession", "CREDENTIAL_HINT", "RENEW_MARGIN"]

log = logging.getLogger("sparc.client")

#: Sign in again this many seconds before the token expires (as pennsieve-go and pennsieve 7.x).
RENEW_MARGIN = 300.0
SERVICE = "pennsieve"
INITIATE_AUTH = "AWSCognitoIdentityProviderService.InitiateAuth"
AMZ_JSON = "application/x-amz-json-1.1"
#: What to set, said by every credentials error.
CREDENTIAL_HINT = (
    "set pennsieve_api_key and pennsieve_api_secret in the config profile, or "
    "PENNSIEVE_API_KEY and PENNSIEVE_API_SECRET in the environment, or point "
    "pennsieve_profile_file (and pennsieve_profile_name) at the Pennsieve CLI's "
    "~/.pennsieve/config.ini; create an API key in the Pennsieve web app under "
    "User settings > API keys"
)


@dataclass(frozen=True)
class PennsieveSession:
    """A signed-in session: the bearer token (never shown) and the organization it acts in."""

    token: str = field(repr=False)
    organization_node_id: str
    organization_id: int | None
    expires_at: float  # time.time() seconds
    lifetime: float

    def fresh(self, now: float | None = None) -> bool:
        """True while the token has more than the renewal margin left."""
        margin = min(RENEW_MARGIN, self.lifetime / 2)
        return (time.time() if now is None else now) < self.expires_at - margin


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT, ``{}`` when it is not one. The client only reads them;
    the server checks the signature."""
    try:
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}


class PennsieveAuth(httpx.Auth):
    """Signs requests with a Pennsieve bearer token, signing in (again) when needed.

    Built by :class:`~sparc.client.services.pennsieve.PennsieveService`; use it through
    ``HostBoundAuth(auth, hosts)`` only.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(self, http: HttpCore, config: Config) -> None:
        self._http = http
        self._config = config
        self._lock = threading.Lock()
        self._session: PennsieveSession | None = None
        self._cognito: dict[str, Any] | None = None
        self.sign_ins = 0  # how many times InitiateAuth succeeded (for tests and logs)

    def __repr__(self) -> str:
        state = "signed in" if self._session is not None else "signed out"
        return f"<PennsieveAuth {state} at {self._config.pennsieve_api_host}>"

    # -- state ----------------------------------------------------------------------------------
    @property
    def has_credentials(self) -> bool:
        """True when an API key and secret are configured."""
        return bool(self._config.pennsieve_api_key and self._config.pennsieve_api_secret)

    @property
    def signed_in(self) -> bool:
        """True once a sign-in succeeded (the token may since need renewing)."""
        return self._session is not None

    @property
    def session(self) -> PennsieveSession | None:
        """The current session, if any (no network)."""
        return self._session

    def expire(self) -> None:
        """Treat the current token as expired: the next call signs in again."""
        with self._lock:
            if self._session is not None:
                s = self._session
                self._session = PennsieveSession(s.token, s.organization_node_id,
                                                 s.organization_id, 0.0, s.lifetime)

    def sign_out(self) -> None:
        """Forget the token (the next private call signs in again)."""
        with self._lock:
            self._session = None

    def current(self) -> PennsieveSession:
        """A session with time left, signing in when there is none or it is about to expire."""
        session = self._session
        if session is not None and session.fresh():
            return session
        return self.sign_in(stale=session)

    def sign_in(self, stale: PennsieveSession | None = None) -> PennsieveSession:
        """Sign in now; with ``stale``, only if the session is still that one (another thread
        may have renewed it meanwhile). Raises :class:`MissingCredentialsError` without a key
        and secret, :class:`AuthenticationError` when they are refused."""
        with self._lock:
            if stale is not None and self._session is not None and self._session is not stale \
                    and self._session.fresh():
                return self._session
            self._session = self._initiate_auth()
            self.sign_ins += 1
            return self._session

    # -- httpx.Auth ------------------------------------------------------------------------------
    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        session = self.current()
        _apply(request, session)
        response = yield request
        if response.status_code == 401:
            log.info("%s %s -> 401; signing in again", request.method, request.url.path)
            _apply(request, self.sign_in(stale=session))
            yield request

    # -- the sign-in itself ----------------------------------------------------------------------
    def _initiate_auth(self) -> PennsieveSession:
        key, secret = self._config.pennsieve_api_key, self._config.pennsieve_api_secret
        if not key or not secret:
            missing = " and ".join(n for n, v in (("pennsieve_api_key", key),
                                                  ("pennsieve_api_secret", secret)) if not v)
            raise MissingCredentialsError(f"Pennsieve sign-in needs an API key and secret "
                                          f"({missing} not set): {CREDENTIAL_HINT}")
        cognito = self._cognito_config()
        pool = cognito.get("tokenPool") or {}
        client_id = pool.get("appClientId")
        region = pool.get("region") or cognito.get("region")
        if not client_id or not isinstance(region, str) \
                or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
            raise ServerError("Pennsieve's cognito-config names no token pool app client or "
                              "no AWS region (such as us-east-1)", status=502, service=SERVICE,
                              url=self._config.pennsieve_api_host + "/authentication/cognito-config")
        endpoint = (self._config.pennsieve_cognito_endpoint
                    or f"https://cognito-idp.{region}.amazonaws.com")
        parts = urlsplit(endpoint)
        if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
            raise InsecureTransportError(
                f"refusing to send the Pennsieve API secret over plain HTTP to {parts.hostname}; "
                "pennsieve_cognito_endpoint must be https:// (plain http only for loopback)")
        body = {"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client_id,
                "AuthParameters": {"USERNAME": key, "PASSWORD": secret}}
        try:
            response = self._http.request(
                "POST", endpoint.rstrip("/") + "/", service="cognito", auth=False,
                idempotent=True, content=json.dumps(body).encode(),
                headers={"X-Amz-Target": INITIATE_AUTH, "Content-Type": AMZ_JSON})
        except ApiError as exc:
            kind = str((exc.body or {}).get("__type", "")) if isinstance(exc.body, dict) else ""
            if kind in ("NotAuthorizedException", "UserNotFoundException",
                        "PasswordResetRequiredException", "UserNotConfirmedException"):
                raise AuthenticationError(
                    f"Pennsieve refused the API key and secret ({exc.server_message or kind}): "
                    f"check them; {CREDENTIAL_HINT}",
                    status=exc.status, method=exc.method, url=exc.url, service=SERVICE,
                    server_message=exc.server_message, code=kind) from None
            raise
        try:
            result = response.json()["AuthenticationResult"]
            access, id_token = str(result["AccessToken"]), str(result["IdToken"])
            expires_in = float(result.get("ExpiresIn") or 3600)
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerError(f"Cognito InitiateAuth answered without tokens "
                              f"({type(exc).__name__})", status=502, service="cognito",
                              url=endpoint) from None
        claims = jwt_claims(id_token)
        org = str(claims.get("custom:organization_node_id") or "")
        org_int = claims.get("custom:organization_id")
        now = time.time()
        expires_at = now + expires_in
        exp = jwt_claims(access).get("exp")
        if isinstance(exp, (int, float)):
            expires_at = min(expires_at, float(exp))
        log.info("signed in to Pennsieve (organization %s, token valid %.0f s)", org or "?",
                 expires_at - now)
        return PennsieveSession(access, org, int(str(org_int)) if str(org_int).isdigit() else None,
                                expires_at, max(1.0, expires_at - now))

    def _cognito_config(self) -> dict[str, Any]:
        if self._cognito is None:
            url = self._config.pennsieve_api_host.rstrip("/") + "/authentication/cognito-config"
            answer = self._http.request("GET", url, service=SERVICE, auth=False).json()
            if not isinstance(answer, dict):
                raise ServerError("cognito-config is not a JSON object", status=502,
                                  service=SERVICE, url=url)
            self._cognito = answer
        return self._cognito


def _apply(request: httpx.Request, session: PennsieveSession) -> None:
    request.headers["Authorization"] = f"Bearer {session.token}"
    if session.organization_node_id:
        request.headers["X-ORGANIZATION-ID"] = session.organization_node_id
