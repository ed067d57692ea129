"""Sign-in as production does it (cognito-config -> Cognito InitiateAuth -> bearer token), against
the sandbox: public calls stay anonymous, the token goes only to the Pennsieve hosts, renewal
before expiry and once after a 401, and credentials errors that name the settings to fix."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from upload_helpers import use_sandbox

from sparc.client import SparcClient
from sparc.client.errors import AuthenticationError, ConfigError, MissingCredentialsError
from sparc.sandbox.process import SandboxProcess


def _cognito_calls(sb: SandboxProcess) -> int:
    return sum(n for route, n in sb.stats()["requests"].items() if "/cognito" in route)


def test_public_calls_do_not_sign_in(ws: SparcClient, sandbox: SandboxProcess) -> None:
    sandbox.reset_stats()
    assert ws.pennsieve.list_datasets(limit=1)["datasets"]
    ws.pennsieve.get_dataset(90)
    assert not ws.pennsieve.signed_in
    assert _cognito_calls(sandbox) == 0
    assert sandbox.stats()["requests"]  # the calls above were counted


def test_connect_signs_in_and_whoami(ws: SparcClient, capsys: pytest.CaptureFixture[str]) -> None:
    p = ws.pennsieve.connect()
    assert capsys.readouterr().out == "Please set the dataset with use_dataset([name])\n"
    assert ws.pennsieve.signed_in
    me = p.user.whoami()
    assert me.id.startswith("N:user:") and me.organization_id.startswith("N:organization:")
    assert me.api_host == ws.pennsieve.host and me.api2_host == ws.pennsieve.api2_host
    assert me.token_expire > time.time() + 60
    assert "session_token" not in me.keys()
    assert ws.pennsieve.whoami()["email"]
    # once signed in, Discover calls carry the token and still work
    assert p.list_datasets(limit=1)["datasets"]


def test_token_is_sent_only_to_the_pennsieve_hosts(ws: SparcClient, sandbox: SandboxProcess
                                                   ) -> None:
    p = ws.pennsieve
    p.sign_in()
    assert p.get("/user")["id"].startswith("N:user:")  # a private route: the token went there
    # the same server under another host name is another host: no token, so 401
    other = sandbox.url.replace("127.0.0.1", "localhost")
    assert other != sandbox.url
    with pytest.raises(AuthenticationError):
        p.get(f"{other}/user")


def test_wrong_secret_is_a_typed_error_without_the_secret(
        sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    use_sandbox(sandbox, monkeypatch, tmp_path)
    wrong = "not-the-secret-0123456789abcdef0123456789"
    monkeypatch.setenv("PENNSIEVE_API_SECRET", wrong)
    caplog.set_level(logging.DEBUG)
    with SparcClient(connect=False) as client, pytest.raises(AuthenticationError) as info:
        client.pennsieve.connect()
    text = f"{info.value} {info.value!r} {info.value.body} {caplog.text}"
    assert wrong not in text
    assert "pennsieve_api_secret" in str(info.value) and "PENNSIEVE_API_SECRET" in str(info.value)
    assert "Incorrect username or password" in str(info.value)


def test_missing_credentials_keeps_public_data_and_names_the_settings(
        sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_sandbox(sandbox, monkeypatch, tmp_path)
    monkeypatch.delenv("PENNSIEVE_API_KEY")
    monkeypatch.delenv("PENNSIEVE_API_SECRET")
    with SparcClient(connect=False) as client:
        p = client.pennsieve.connect()
        assert p.list_datasets(limit=1)["datasets"]  # public data as before
        for call in (p.user.whoami, client.pennsieve.list_my_datasets,
                     lambda: client.pennsieve.create_dataset("x")):
            with pytest.raises(MissingCredentialsError) as info:
                call()
            assert "pennsieve_api_key" in str(info.value)
            assert "PENNSIEVE_API_SECRET" in str(info.value)
        assert not client.pennsieve.signed_in


def test_secrets_and_tokens_never_logged_or_shown(ws: SparcClient, sandbox: SandboxProcess,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    p = ws.pennsieve
    p.connect()
    p.list_my_datasets()
    session = p.auth.session
    assert session is not None
    shown = " ".join([caplog.text, repr(ws.config), str(ws.config), repr(p.auth), repr(session),
                      repr(p.connect()), repr(p.connect().user.whoami())])
    for secret in (sandbox.env["PENNSIEVE_API_SECRET"], session.token):
        assert secret not in shown


def test_renews_before_expiry(own_sandbox: SandboxProcess) -> None:
    # 8 s: the first call comes well within the first half of the life even on a loaded box
    # (the JWT's whole-second exp can cut up to 1 s of it)
    own_sandbox.get_json("/_workspace/lifetimes", "PUT", {"access_token": 8})
    with SparcClient(connect=False) as client:
        p = client.pennsieve
        p.sign_in()
        first = p.auth.session
        assert first is not None and first.lifetime <= 8
        p.list_my_datasets()  # within the first half of the life: same token
        assert p.auth.sign_ins == 1
        # past half of the life (not yet expired): renewed before use, no 401 needed
        time.sleep(max(0.0, first.expires_at - first.lifetime / 2 - time.time()) + 0.2)
        before = own_sandbox.stats()["requests"]
        p.list_my_datasets()
        assert p.auth.sign_ins == 2 and p.auth.session is not first
        after = own_sandbox.stats()["requests"]
        assert after.get("GET /datasets", 0) == before.get("GET /datasets", 0) + 1


def test_renews_once_after_a_401(own_sandbox: SandboxProcess) -> None:
    with SparcClient(connect=False) as client:
        p = client.pennsieve
        p.sign_in()
        assert p.list_my_datasets() == []
        own_sandbox.get_json("/_workspace/expire-tokens", "POST")  # revoked server-side
        assert p.create_dataset("after-expiry")["content"]["name"] == "after-expiry"
        assert p.auth.sign_ins == 2
        assert [d["content"]["name"] for d in p.list_my_datasets()] == ["after-expiry"]


def test_pennsieve_cli_profile_file(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    use_sandbox(sandbox, monkeypatch, tmp_path)
    for name in ("PENNSIEVE_API_KEY", "PENNSIEVE_API_SECRET", "PENNSIEVE_API_HOST",
                 "PENNSIEVE_API2_HOST"):
        monkeypatch.delenv(name)
    profile = tmp_path / "pennsieve-config.ini"
    profile.write_text(
        "[global]\ndefault_profile = other\n\n[other]\napi_token = x\napi_secret = y\n\n"
        f"[sbx]\napi_token = {sandbox.env['PENNSIEVE_API_KEY']}\n"
        f"api_secret = {sandbox.env['PENNSIEVE_API_SECRET']}\napi_host = {sandbox.url}\n"
        f"api2_host = {sandbox.url}\n")
    settings = {"pennsieve_profile_file": str(profile), "pennsieve_profile_name": "sbx"}
    with SparcClient(connect=False, config=settings) as client:
        assert client.pennsieve.host == sandbox.url
        assert client.pennsieve.whoami()["id"].startswith("N:user:")
        assert sandbox.env["PENNSIEVE_API_SECRET"] not in repr(client.config)
    with pytest.raises(ConfigError, match="no profile \\[nope\\]"):
        SparcClient(connect=False, config={**settings, "pennsieve_profile_name": "nope"})


def test_agent_profile_name_alone_reads_the_pennsieve_cli_file(
        sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An existing Pennsieve setup needs nothing new: ``pennsieve_profile_name`` (the setting
    the tutorial used for the Agent's profile) finds ``~/.pennsieve/config.ini``."""
    use_sandbox(sandbox, monkeypatch, tmp_path)
    monkeypatch.delenv("PENNSIEVE_API_KEY")
    monkeypatch.delenv("PENNSIEVE_API_SECRET")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".pennsieve").mkdir()
    (tmp_path / ".pennsieve" / "config.ini").write_text(
        f"[lab]\napi_token = {sandbox.env['PENNSIEVE_API_KEY']}\n"
        f"api_secret = {sandbox.env['PENNSIEVE_API_SECRET']}\n")
    with SparcClient(connect=False, config={"pennsieve_profile_name": "lab"}) as client:
        assert client.pennsieve.whoami()["id"].startswith("N:user:")
        assert client.pennsieve.get_profile() == "lab"
    with SparcClient(connect=False, config={"pennsieve_profile_name": "other"}) as client:
        assert client.config.pennsieve_api_key is None  # no such profile there: nothing read


def test_new_host_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("pennsieve_api2_host", "pennsieve_cognito_endpoint", "pennsieve_s3_endpoint"):
        with pytest.raises(ConfigError, match=key):
            SparcClient(connect=False, config={key: "ftp://example.org"})
    config = SparcClient(connect=False, config={"pennsieve_s3_endpoint": "http://127.0.0.1:9/s3/"}
                         ).config
    assert config.pennsieve_s3_endpoint == "http://127.0.0.1:9/s3"
    monkeypatch.delenv("PENNSIEVE_API2_HOST", raising=False)
    assert SparcClient(connect=False).config.pennsieve_api2_host == "https://api2.pennsieve.io"


def test_unparsable_profile_files_do_not_quote_their_lines(tmp_path: Path) -> None:
    """A config line the parser cannot read may hold a secret: the error names the file and
    the line number, never the text, and chains nothing that would show it."""
    secret = "s3cr3t-" + "x" * 30
    profile = tmp_path / "pennsieve-config.ini"
    profile.write_text(f"[lab]\napi_token = k\napi_token = {secret}\n")  # a duplicate option
    sparc = tmp_path / "sparc.ini"
    sparc.write_text(f"[default]\npennsieve_api_secret = a\n{secret}\n")  # no '=': unparsable
    for build in (
            lambda: SparcClient(connect=False, config={"pennsieve_profile_file": str(profile),
                                                       "pennsieve_profile_name": "lab"}),
            lambda: SparcClient(connect=False, config_file=str(sparc))):
        with pytest.raises(ConfigError, match=r"cannot be parsed: \w+Error at line \d") as info:
            build()
        assert secret not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_secrets_never_go_over_plain_http_to_other_hosts(
        ws: SparcClient, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API secret (Cognito) and storage credentials (S3) go over https only, plain http
    only to loopback: refused before anything is sent."""
    from sparc.client.errors import InsecureTransportError

    monkeypatch.delenv("PENNSIEVE_COGNITO_ENDPOINT")  # the environment wins over config=
    monkeypatch.delenv("PENNSIEVE_S3_ENDPOINT")
    sandbox.reset_stats()
    settings = {"pennsieve_cognito_endpoint": "http://cognito.example.org"}
    with SparcClient(connect=False, config=settings) as client:
        assert client.config.pennsieve_api_secret  # from the environment
        with pytest.raises(InsecureTransportError, match="plain HTTP to cognito.example.org"):
            client.pennsieve.sign_in()
        assert not client.pennsieve.signed_in
    asked = sandbox.stats()["requests"]
    assert not [r for r in asked if r.startswith("POST")], asked  # only cognito-config was read
    settings = {"pennsieve_s3_endpoint": "http://s3.example.org"}
    with SparcClient(connect=False, config=settings) as client:
        with pytest.raises(InsecureTransportError, match="plain HTTP to s3.example.org"):
            client.pennsieve.upload_engine("N:dataset:x")
