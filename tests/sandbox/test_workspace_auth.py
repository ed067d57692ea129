"""Cognito sign-in and the token check of the private API, the upload service and the embargo hook."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from workspace_helpers import KEY, SECRET, Signed, initiate_auth, jwt_claims

from sparc.sandbox.process import SandboxProcess
from sparc.sandbox.server import create_app
from sparc.sandbox.settings import SandboxSettings
from sparc.sandbox.workspace.embargo import (
    DENIED,
    GRANTED_ACCESS,
    INVALID_TOKEN,
    SIGNED_OUT,
    embargo_access,
    embargo_decision,
)
from sparc.sandbox.workspace.tokens import INVALID, signed_in_user

PRIVATE = ["/user", "/datasets", "/datasets/paginated"]


@pytest.fixture(scope="module")
def own_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox for tests that expire every token (kept off the shared one)."""
    with SandboxProcess(tmp_path_factory.mktemp("ws-auth"), "--time-scale", "0") as sb:
        yield sb


def test_cognito_config_points_at_the_token_pool(sandbox: SandboxProcess) -> None:
    config = httpx.get(sandbox.url + "/authentication/cognito-config").json()
    assert config["region"] == "us-east-1"
    assert set(config) == {"region", "userPool", "tokenPool", "identityPool"}
    for pool in ("userPool", "tokenPool", "identityPool"):
        assert set(config[pool]) == {"region", "id", "appClientId"}
    assert config["tokenPool"]["appClientId"] != config["userPool"]["appClientId"]
    # the client's Cognito endpoint is the sandbox's /cognito (PENNSIEVE_COGNITO_ENDPOINT)
    assert sandbox.env["PENNSIEVE_COGNITO_ENDPOINT"] == sandbox.url + "/cognito"


def test_initiate_auth_issues_tokens_with_expiry_and_org_claims(sandbox: SandboxProcess) -> None:
    before = time.time()
    r = initiate_auth(sandbox.url)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-amz-json-1.1"
    result = r.json()["AuthenticationResult"]
    assert result["TokenType"] == "Bearer" and result["ExpiresIn"] == 3600
    access, id_claims = jwt_claims(result["AccessToken"]), jwt_claims(result["IdToken"])
    assert before + 3590 <= access["exp"] <= time.time() + 3600
    assert access["token_use"] == "access" and access["username"] == KEY
    assert id_claims["custom:organization_node_id"].startswith("N:organization:")
    assert id_claims["custom:organization_id"] == "367"
    user = Signed(sandbox.url, result).get("/user").json()
    assert user["preferredOrganization"] == id_claims["custom:organization_node_id"]
    assert user["id"].startswith("N:user:") and isinstance(user["intId"], int)


def test_boto3_cognito_client_signs_in_against_the_sandbox(sandbox: SandboxProcess) -> None:
    """The JSON 1.1 protocol is the real one: boto3's own cognito-idp client parses the answers."""
    import boto3
    from botocore.exceptions import ClientError

    client_id = httpx.get(sandbox.url + "/authentication/cognito-config").json()["tokenPool"]["appClientId"]
    idp = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=sandbox.env["PENNSIEVE_COGNITO_ENDPOINT"],
                       aws_access_key_id="unused", aws_secret_access_key="unused")
    ok = idp.initiate_auth(AuthFlow="USER_PASSWORD_AUTH", ClientId=client_id,
                           AuthParameters={"USERNAME": KEY, "PASSWORD": SECRET})
    assert jwt_claims(ok["AuthenticationResult"]["AccessToken"])["token_use"] == "access"
    with pytest.raises(ClientError) as info:
        idp.initiate_auth(AuthFlow="USER_PASSWORD_AUTH", ClientId=client_id,
                          AuthParameters={"USERNAME": KEY, "PASSWORD": "not-the-secret"})
    assert info.value.response["Error"]["Code"] == "NotAuthorizedException"
    assert info.value.response["Error"]["Message"] == "Incorrect username or password."


@pytest.mark.parametrize(("username", "password"), [(KEY, "wrong-secret"), ("other-key", SECRET)])
def test_wrong_credentials_are_not_authorized(sandbox: SandboxProcess, username: str, password: str) -> None:
    r = initiate_auth(sandbox.url, username, password)
    assert r.status_code == 400
    assert r.json() == {"__type": "NotAuthorizedException", "message": "Incorrect username or password."}


def test_unknown_client_id_and_other_flows_are_refused(sandbox: SandboxProcess) -> None:
    r = initiate_auth(sandbox.url, client_id="0000000000000000000000000")
    assert r.status_code == 400 and r.json()["__type"] == "ResourceNotFoundException"
    user_pool = httpx.get(sandbox.url + "/authentication/cognito-config").json()["userPool"]["appClientId"]
    assert initiate_auth(sandbox.url, client_id=user_pool).json()["__type"] == "NotAuthorizedException"
    r = httpx.post(sandbox.url + "/cognito", content=b"{}", headers={
        "X-Amz-Target": "AWSCognitoIdentityProviderService.SignUp", "Content-Type": "application/x-amz-json-1.1"})
    assert r.status_code == 400


@pytest.mark.parametrize("path", PRIVATE)
def test_private_routes_need_a_token(sandbox: SandboxProcess, path: str) -> None:
    assert httpx.get(sandbox.url + path).status_code == 401


def _forged(token: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"


@pytest.mark.parametrize("path", PRIVATE)
def test_forged_or_id_tokens_are_refused(sandbox: SandboxProcess, path: str) -> None:
    result = Signed.sign_in(sandbox.url).result
    for token in (_forged(result["AccessToken"]), result["IdToken"], "not-a-jwt"):
        r = httpx.get(sandbox.url + path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
    assert httpx.get(sandbox.url + path, headers={"Authorization": "Bearer " + result["AccessToken"]}).status_code == 200


def test_a_token_of_another_sandbox_is_refused(sandbox: SandboxProcess, own_sandbox: SandboxProcess) -> None:
    """Each server signs with its own random key."""
    other = Signed.sign_in(own_sandbox.url)
    assert other.get("/user").status_code == 200
    assert httpx.get(sandbox.url + "/user", headers=other.headers).status_code == 401


def test_upload_service_refuses_missing_and_forged_tokens(sandbox: SandboxProcess) -> None:
    ws = Signed.sign_in(sandbox.url)
    ds = ws.create_dataset()
    url = sandbox.url + "/upload/manifest"
    assert httpx.get(url, params={"dataset_id": ds}).status_code == 401
    r = httpx.get(url, params={"dataset_id": ds}, headers={"Authorization": "Bearer " + _forged(ws.result["AccessToken"])})
    assert r.status_code == 401 and r.json() == {"message": "Unauthorized"}
    assert ws.get("/upload/manifest", params={"dataset_id": ds}).status_code == 200
    # an identity source missing (dataset_id here; manifest_id on the status routes): 401
    assert ws.get("/upload/manifest").status_code == 401
    assert ws.get("/upload/manifest/status", params={"status": "Finalized"}).status_code == 401
    # a dataset the authorizer cannot resolve: API Gateway's 403
    r = ws.get("/upload/manifest", params={"dataset_id": "N:dataset:00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 403 and r.json() == {"message": "Forbidden"}


def test_another_organization_header_is_forbidden(sandbox: SandboxProcess) -> None:
    ws = Signed.sign_in(sandbox.url)
    r = httpx.get(sandbox.url + "/user", headers={**ws.headers, "X-ORGANIZATION-ID": "N:organization:other"})
    assert r.status_code == 403


def test_expired_tokens_are_refused_and_signing_in_again_works(own_sandbox: SandboxProcess) -> None:
    base = own_sandbox.url
    ws = Signed.sign_in(base)
    assert ws.get("/user").status_code == 200
    assert httpx.post(base + "/_workspace/expire-tokens").status_code == 200
    assert ws.get("/user").status_code == 401
    assert ws.get("/datasets").status_code == 401
    assert Signed.sign_in(base).get("/user").status_code == 200


def test_short_token_lifetime_expires_by_the_clock(own_sandbox: SandboxProcess) -> None:
    base = own_sandbox.url
    r = httpx.put(base + "/_workspace/lifetimes", json={"access_token": 1})
    assert r.status_code == 200 and r.json()["access_token"] == 1
    try:
        ws = Signed.sign_in(base)
        assert ws.result["ExpiresIn"] == 1
        assert jwt_claims(ws.result["AccessToken"])["exp"] <= time.time() + 1
        time.sleep(1.2)
        assert ws.get("/user").status_code == 401
    finally:
        httpx.put(base + "/_workspace/lifetimes", json={"access_token": 3600})
    assert Signed.sign_in(base).result["ExpiresIn"] == 3600


def test_lifetimes_control_rejects_bad_values(own_sandbox: SandboxProcess) -> None:
    for body in ({"access_token": -1}, {"nope": 3}, {"access_token": "1"}, [1]):
        assert httpx.put(own_sandbox.url + "/_workspace/lifetimes", json=body).status_code == 400


def test_signed_in_user_and_embargo_decisions(tmp_path: Path) -> None:
    """The hook the Discover routes call, on an app built in process."""
    app = create_app(SandboxSettings(data_dir=tmp_path, time_scale=0))
    try:
        token = "Bearer " + app.state.workspace_tokens.issue()["AccessToken"]
        assert signed_in_user(app, None) is None
        assert signed_in_user(app, "Bearer " + _forged(token[7:])) is INVALID
        user = signed_in_user(app, token)
        assert user is not None and user is not INVALID
        assert embargo_decision(app, None, 275) == SIGNED_OUT
        assert embargo_decision(app, "Bearer x.y.z", 275) == INVALID_TOKEN
        assert embargo_decision(app, token, 275) == GRANTED_ACCESS
        assert embargo_decision(app, token, 90) == DENIED
        assert embargo_access(app, token, 275) == "Granted"
        assert embargo_access(app, None, 275) is None
        app.state.workspace_tokens.expire_all()
        assert embargo_decision(app, token, 275) == INVALID_TOKEN
    finally:
        app.state.db.close()
