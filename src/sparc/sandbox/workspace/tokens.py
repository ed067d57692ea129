"""Cognito sign-in for the sandbox user: ``GET /authentication/cognito-config`` and
``InitiateAuth`` at ``/cognito`` (AWS JSON 1.1), issuing signed JWTs; and the token check every
private route makes.

Tokens are HS256 JWTs signed with a key drawn per server, so a token from another sandbox (or an
edited one) is forged. Example::

    user = signed_in_user(app, request.headers.get("authorization"))  # None: no token sent
    if user is INVALID: ...                                            # forged or expired: 401
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sparc.sandbox.settings import COGNITO_PATH

REGION = "us-east-1"
#: Seconds an access/id token lives (production's token pool: 60 min). Tests shorten it with
#: ``PUT /_workspace/lifetimes``.
ACCESS_TOKEN_LIFETIME = 3600
AMZ_JSON = "application/x-amz-json-1.1"
INITIATE_AUTH = "AWSCognitoIdentityProviderService.InitiateAuth"

#: The sandbox user's organization: SPARC's (its int id is the Discover ``organizationId`` 367).
ORGANIZATION_NODE_ID = "N:organization:618e8dd9-f8d2-4dc4-9abb-c6aaab2e78a0"
ORGANIZATION_INT_ID = 367
ORGANIZATION_NAME = "SPARC Consortium"
USER_INT_ID = 1001


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class User:
    """The signed-in user a valid access token names."""

    node_id: str
    int_id: int
    username: str  # the API key
    organization_node_id: str
    organization_int_id: int


class _Invalid:
    """Marker for a token that was sent but is forged, malformed or expired."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()


class Tokens:
    """Issues and checks the sandbox's JWTs; one per server (``app.state.workspace_tokens``)."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self._key = secrets.token_bytes(32)
        self.kid = secrets.token_hex(8)
        suffix = hashlib.sha256(api_key.encode()).hexdigest()
        self.user_pool_id = f"{REGION}_sbxUser{suffix[:4]}"
        self.token_pool_id = f"{REGION}_sbxToken{suffix[4:8]}"
        self.user_pool_client_id = secrets.token_hex(13)[:26]
        self.token_pool_client_id = secrets.token_hex(13)[:26]
        self.user = User(node_id=f"N:user:{uuid.uuid5(uuid.NAMESPACE_URL, 'sandbox-user:' + api_key)}",
                         int_id=USER_INT_ID, username=api_key,
                         organization_node_id=ORGANIZATION_NODE_ID,
                         organization_int_id=ORGANIZATION_INT_ID)
        self.lifetime = ACCESS_TOKEN_LIFETIME
        self._not_before = 0.0  # tokens issued before this instant count as expired
        self._lock = threading.Lock()

    # ---- JWTs -------------------------------------------------------------------------------------
    def _sign(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"kid": self.kid, "alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self._key, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(mac)}"

    def claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this server signed that has not expired, else ``None``."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            mac = _unb64(parts[2])
            expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(mac, expected):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, TypeError):
            return None
        if not isinstance(claims, dict):
            return None
        now = time.time()
        with self._lock:
            not_before = self._not_before
        if float(claims.get("exp", 0)) <= now or float(claims.get("iat_ms", 0)) / 1000 < not_before:
            return None
        return claims

    def issue(self) -> dict[str, Any]:
        """A Cognito ``AuthenticationResult`` for the sandbox user (token pool)."""
        now = time.time()
        iat, exp = int(now), int(now) + self.lifetime
        issuer = f"https://cognito-idp.{REGION}.amazonaws.com/{self.token_pool_id}"
        sub = str(uuid.uuid5(uuid.NAMESPACE_URL, "cognito:" + self.api_key))
        common = {"sub": sub, "iss": issuer, "auth_time": iat, "iat": iat, "exp": exp,
                  "iat_ms": int(now * 1000), "jti": str(uuid.uuid4())}
        access = self._sign({**common, "token_use": "access", "client_id": self.token_pool_client_id,
                             "scope": "aws.cognito.signin.user.admin", "username": self.api_key})
        id_token = self._sign({**common, "token_use": "id", "aud": self.token_pool_client_id,
                               "cognito:username": self.api_key,
                               "custom:organization_node_id": ORGANIZATION_NODE_ID,
                               "custom:organization_id": str(ORGANIZATION_INT_ID)})
        return {"AccessToken": access, "ExpiresIn": self.lifetime, "IdToken": id_token,
                "RefreshToken": _b64(secrets.token_bytes(48)), "TokenType": "Bearer"}

    def expire_all(self) -> None:
        """Make every token issued so far count as expired (``POST /_workspace/expire-tokens``)."""
        with self._lock:
            self._not_before = time.time()

    def user_for(self, authorization: str | None) -> User | _Invalid | None:
        """``None`` without a bearer token; :data:`INVALID` for a forged/expired/id token."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return INVALID
        claims = self.claims(token.strip())
        if claims is None or claims.get("token_use") != "access":
            return INVALID
        return self.user


def tokens(app: Any) -> Tokens:
    return app.state.workspace_tokens


def signed_in_user(app: Any, authorization: str | None) -> User | _Invalid | None:
    """Who a request's ``Authorization`` header signs in (for Discover's embargo check).

    ``None``: no header (signed out); :data:`INVALID`: a token was sent but it is forged,
    malformed or expired (answer 401); else the :class:`User`. Example::

        user = signed_in_user(request.app, request.headers.get("authorization"))
    """
    return tokens(app).user_for(authorization)


# ---- routes ---------------------------------------------------------------------------------------
def _cognito_error(status: int, kind: str, message: str) -> Response:
    return Response(json.dumps({"__type": kind, "message": message}), status_code=status,
                    media_type=AMZ_JSON, headers={"x-amzn-requestid": str(uuid.uuid4()),
                                                  "x-amzn-errortype": f"{kind}:"})


async def cognito_config(request: Request) -> Response:
    """``GET /authentication/cognito-config`` (authorization-service ``AuthenticationRoutes.scala``):
    no auth; ``{region, userPool, tokenPool, identityPool}``, each ``{region, id, appClientId}``."""
    t = tokens(request.app)
    return JSONResponse({
        "region": REGION,
        "userPool": {"region": REGION, "id": t.user_pool_id, "appClientId": t.user_pool_client_id},
        "tokenPool": {"region": REGION, "id": t.token_pool_id, "appClientId": t.token_pool_client_id},
        "identityPool": {"region": REGION, "id": f"{REGION}:{uuid.uuid5(uuid.NAMESPACE_URL, t.kid)}",
                         "appClientId": ""},  # retired (pennsieve 7.0.5); a CognitoPoolConfigDTO all the same
    })


async def cognito(request: Request) -> Response:
    """Cognito Identity Provider, JSON 1.1: only ``InitiateAuth`` with ``USER_PASSWORD_AUTH``."""
    t = tokens(request.app)
    target = request.headers.get("x-amz-target", "")
    if not target.startswith("AWSCognitoIdentityProviderService."):
        return _cognito_error(400, "UnknownOperationException", "")
    if target != INITIATE_AUTH:
        return _cognito_error(400, "InvalidParameterException",
                              f"Operation {target.rpartition('.')[2]} is not emulated by the sandbox")
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return _cognito_error(400, "SerializationException", "Failed to parse the request body")
    if not isinstance(body, dict):
        return _cognito_error(400, "SerializationException", "Start of structure or map found where not expected.")
    client_id = body.get("ClientId")
    if client_id not in (t.token_pool_client_id, t.user_pool_client_id):
        return _cognito_error(400, "ResourceNotFoundException", f"User pool client {client_id} does not exist.")
    flow = body.get("AuthFlow")
    if flow != "USER_PASSWORD_AUTH":
        if flow in ("REFRESH_TOKEN_AUTH", "REFRESH_TOKEN", "USER_SRP_AUTH", "CUSTOM_AUTH", "USER_AUTH"):
            return _cognito_error(400, "InvalidParameterException", f"{flow} is not enabled for the client.")
        return _cognito_error(400, "InvalidParameterException",
                              "1 validation error detected: Value at 'authFlow' failed to satisfy constraint: "
                              "Member must satisfy enum value set")
    params = body.get("AuthParameters") or {}
    if not isinstance(params, dict) or not params.get("USERNAME") or not params.get("PASSWORD"):
        return _cognito_error(400, "InvalidParameterException", "Missing required parameter USERNAME")
    if client_id != t.token_pool_client_id:
        # API keys live in the token pool; the user pool knows only people (e-mail + password)
        return _cognito_error(400, "NotAuthorizedException", "Incorrect username or password.")
    if not (hmac.compare_digest(str(params["USERNAME"]), t.api_key)
            and hmac.compare_digest(str(params["PASSWORD"]), t.api_secret)):
        return _cognito_error(400, "NotAuthorizedException", "Incorrect username or password.")
    return Response(json.dumps({"AuthenticationResult": t.issue(), "ChallengeParameters": {}}),
                    media_type=AMZ_JSON, headers={"x-amzn-requestid": str(uuid.uuid4())})


def cognito_error_body(status: int) -> tuple[bytes, str]:
    """An injected fault on ``/cognito`` in Cognito's JSON 1.1 error shape."""
    kind = {429: "TooManyRequestsException", 400: "InvalidParameterException",
            403: "NotAuthorizedException", 404: "ResourceNotFoundException"}.get(status, "InternalErrorException")
    message = "Rate exceeded" if status == 429 else "Internal server error." if status >= 500 else "Request failed"
    return json.dumps({"__type": kind, "message": message}).encode(), AMZ_JSON


routes = [
    Route("/authentication/cognito-config", cognito_config, methods=["GET"]),
    Route(COGNITO_PATH, cognito, methods=["POST"]),
    Route(COGNITO_PATH + "/", cognito, methods=["POST"]),
]
