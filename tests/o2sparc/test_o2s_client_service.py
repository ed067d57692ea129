"""O2SparcService against the sandbox: profile, solvers, releases, configuration errors,
the lazy import of ``osparc`` and the missing-extra error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from o2s_helpers import CSV_STATS, SLEEPER

from sparc.client import SparcClient
from sparc.client.config import Config
from sparc.client.errors import (
    ArgumentError,
    AuthenticationError,
    InsecureTransportError,
    MissingCredentialsError,
    NotFoundError,
    TransportError,
)
from sparc.client.services.o2sparc import (
    O2SparcService,
    O2SparcSolver,
    SolverInfo,
)
from sparc.sandbox.process import SandboxProcess


def test_profile_is_the_login(o2sparc: O2SparcService) -> None:
    assert o2sparc.get_profile() == "sandbox-user@example.com"
    user = o2sparc.get_user()
    assert user["login"] == "sandbox-user@example.com"
    assert user["role"] in ("USER", "TESTER", "PRODUCT_OWNER", "ADMIN", "GUEST")


def test_client_property_builds_the_service_lazily(sandbox: SandboxProcess) -> None:
    client = SparcClient(config=Config.from_mapping({}, environ=sandbox.env))
    assert isinstance(client.o2sparc, O2SparcService)
    assert client.o2sparc is client.o2sparc
    assert client.o2sparc.host == sandbox.env["O2SPARC_HOST"].rstrip("/")
    client.close()


def test_list_solvers_latest_and_all_releases(o2sparc: O2SparcService) -> None:
    latest = o2sparc.list_solvers()
    assert all(isinstance(s, SolverInfo) for s in latest)
    keys = [s.key for s in latest]
    assert SLEEPER in keys and CSV_STATS in keys
    assert len(keys) == len(set(keys))  # one release each
    releases = o2sparc.list_solvers(all_releases=True)
    assert {(s.key, s.version) for s in releases} >= {(SLEEPER, "2.0.2"), (SLEEPER, "2.1.6")}
    sleeper_latest = next(s for s in latest if s.key == SLEEPER)
    assert sleeper_latest.version == max((s.version for s in releases if s.key == SLEEPER),
                                         key=lambda v: tuple(int(p) for p in v.split(".")))


def test_list_solver_releases_oldest_first(o2sparc: O2SparcService) -> None:
    versions = [s.version for s in o2sparc.list_solver_releases(SLEEPER)]
    assert versions[:1] == ["2.0.2"] and "2.1.6" in versions
    with pytest.raises(NotFoundError):
        o2sparc.list_solver_releases("simcore/services/comp/no-such-solver")
    with pytest.raises(ArgumentError):
        o2sparc.list_solver_releases("")


def test_get_solver_by_version_and_latest(o2sparc: O2SparcService) -> None:
    solver = o2sparc.get_solver(solver_key=SLEEPER, solver_version="2.0.2")
    assert isinstance(solver, O2SparcSolver)
    assert (solver.key, solver.version, solver.info.title) == (SLEEPER, "2.0.2", "sleeper")
    latest = o2sparc.get_solver(SLEEPER)
    assert latest.version == o2sparc.list_solver_releases(SLEEPER)[-1].version
    assert repr(solver) == f"<O2SparcSolver {SLEEPER} 2.0.2>"


def test_unknown_solver_or_version_is_not_found(o2sparc: O2SparcService) -> None:
    with pytest.raises(NotFoundError) as err:
        o2sparc.get_solver(SLEEPER, "9.9.9")
    assert err.value.status == 404 and err.value.service == "o2sparc"
    assert "9.9.9" in str(err.value)
    with pytest.raises(NotFoundError):
        o2sparc.get_solver("simcore/services/comp/nothing-here", "1.0.0")


def test_ports(sleeper: O2SparcSolver) -> None:
    inputs = {p.key: p for p in sleeper.input_ports}
    outputs = {p.key: p for p in sleeper.output_ports}
    assert set(inputs) >= {"input_1", "input_2", "input_3"}
    assert set(outputs) >= {"output_1", "output_2"}
    assert inputs["input_1"].type == "string" and inputs["input_1"].required
    assert inputs["input_2"].type == "integer" and inputs["input_2"].schema is not None
    assert inputs["input_3"].type == "boolean" and not inputs["input_3"].required
    assert {p.kind for p in sleeper.ports} == {"input", "output"}


def test_wrong_credentials_are_an_authentication_error(
        make_client: Callable[..., SparcClient]) -> None:
    o2sparc = make_client(O2SPARC_PASSWORD="not-the-secret").o2sparc
    with pytest.raises(AuthenticationError) as err:
        o2sparc.get_profile()
    assert err.value.status == 401
    assert "not-the-secret" not in str(err.value) and "not-the-secret" not in repr(err.value)


def test_missing_credentials_name_the_settings(sandbox: SandboxProcess) -> None:
    environ = {"O2SPARC_HOST": sandbox.env["O2SPARC_HOST"]}
    client = SparcClient(config=Config.from_mapping({}, environ=environ))
    with pytest.raises(MissingCredentialsError) as err:
        client.o2sparc.get_profile()
    text = str(err.value)
    for word in ("o2sparc_username", "o2sparc_password", "O2SPARC_USERNAME", "O2SPARC_PASSWORD",
                 "o2sparc_host"):
        assert word in text
    # connect() does not fail without credentials: it says why in the log and returns None
    assert client.o2sparc.connect() is None
    client.close()


def test_connect_true_with_and_without_credentials(sandbox: SandboxProcess) -> None:
    with SparcClient(config=Config.from_mapping({}, environ={}), connect=True) as client:
        assert client.o2sparc.connect() is None
    with SparcClient(config=Config.from_mapping({}, environ=sandbox.env), connect=True) as c:
        api_client = c.o2sparc.connect()
        assert api_client is not None
        assert api_client.configuration.host == sandbox.env["O2SPARC_HOST"].rstrip("/")


def test_credentials_never_over_plain_http_except_loopback() -> None:
    config = Config.from_mapping({"o2sparc_host": "http://api.example.org",
                                  "o2sparc_username": "key", "o2sparc_password": "s3cr3t"},
                                 environ={})
    client = SparcClient(config=config)
    with pytest.raises(InsecureTransportError) as err:
        client.o2sparc.get_profile()
    assert "api.example.org" in str(err.value) and "s3cr3t" not in str(err.value)
    client.close()


def test_unreachable_host_is_a_transport_error(make_client: Callable[..., SparcClient]) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    o2sparc = make_client(O2SPARC_HOST=f"http://127.0.0.1:{port}").o2sparc
    with pytest.raises(TransportError) as err:
        o2sparc.get_profile()
    assert f"127.0.0.1:{port}" in str(err.value)


def test_secrets_never_in_reprs_or_info(o2sparc: O2SparcService, sandbox: SandboxProcess) -> None:
    secret = sandbox.env["O2SPARC_PASSWORD"]
    o2sparc.get_profile()
    for text in (repr(o2sparc), str(o2sparc), o2sparc.info(), repr(o2sparc.config),
                 repr(o2sparc.session), repr(o2sparc.session.settings)):
        assert secret not in text
    assert o2sparc.info().startswith("o²S²PARC at ") and "osparc 0.8" in o2sparc.info()


def test_set_profile_with_key_and_secret(o2sparc: O2SparcService, sandbox: SandboxProcess) -> None:
    with pytest.raises(AuthenticationError):
        o2sparc.set_profile("sandbox-key", "wrong-secret")
    assert o2sparc.set_profile(sandbox.env["O2SPARC_USERNAME"],
                               sandbox.env["O2SPARC_PASSWORD"]) == "sandbox-user@example.com"


def test_upload_file(o2sparc: O2SparcService, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n")
    record = o2sparc.upload_file(path)
    assert record["filename"] == "data.csv" and record["id"]
    again = o2sparc.upload_file(path)  # same content and name: the server's copy is reused
    assert again["id"] == record["id"]
    with pytest.raises(ArgumentError):
        o2sparc.upload_file(tmp_path / "missing.csv")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_importing_does_not_import_osparc() -> None:
    out = _run("import sys; import sparc.client; "
               "from sparc.client.services.o2sparc import O2SparcService, O2SparcSolver; "
               "from sparc.client import SparcClient; c = SparcClient(config={}); "
               "print(c.o2sparc.info()); "
               "print(sorted(m for m in ('osparc', 'osparc_client', 'tqdm', 'urllib3') "
               "if m in sys.modules))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]")


def test_without_the_extra_the_error_names_the_install_command(sandbox: SandboxProcess) -> None:
    code = ("import sys; sys.modules['osparc'] = None\n"  # as if not installed
            "from sparc.client import SparcClient\n"
            "from sparc.client.services.o2sparc import O2SparcNotInstalledError\n"
            "c = SparcClient(connect=True)\n"  # connect() must not fail
            "print(c.o2sparc.info())\n"
            "try:\n    c.o2sparc.get_profile()\n"
            "except O2SparcNotInstalledError as e:\n"
            "    assert isinstance(e, ImportError); print('ERROR', e)\n")
    env_code = f"import os; os.environ.update({dict(sandbox.env)!r})\n" + code
    out = _run(env_code)
    assert out.returncode == 0, out.stderr
    assert "ERROR" in out.stdout and "pip install 'sparc.client[o2sparc]'" in out.stdout


def test_switching_profiles_rebuilds_the_session(sandbox: SandboxProcess, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("O2SPARC_HOST", "O2SPARC_USERNAME", "O2SPARC_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    ini = tmp_path / "config.ini"
    host, key = sandbox.env["O2SPARC_HOST"], sandbox.env["O2SPARC_USERNAME"]
    ini.write_text(f"[global]\ndefault_profile = good\n\n"
                   f"[good]\no2sparc_host = {host}\no2sparc_username = {key}\n"
                   f"o2sparc_password = {sandbox.env['O2SPARC_PASSWORD']}\n\n"
                   f"[bad]\no2sparc_host = {host}\no2sparc_username = {key}\n"
                   f"o2sparc_password = not-it\n")
    with SparcClient(config_file=ini) as client:
        assert client.o2sparc.get_profile() == "sandbox-user@example.com"
        client.set_profile("bad")
        with pytest.raises(AuthenticationError):
            client.o2sparc.get_profile()
        assert client.o2sparc.set_profile("good") == "sandbox-user@example.com"


def test_debug_logs_of_every_logger_never_hold_the_secret(
        o2sparc: O2SparcService, sandbox: SandboxProcess, number_file: Path,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """A whole job's life with every logger at DEBUG (urllib3, httpx, httpcore, osparc...):
    neither the secret nor the Basic ``Authorization`` value shows, in logs or on the
    terminal (http.client's header dump stays off), and TLS verification stays on."""
    import base64
    import logging
    import uuid

    key, secret = sandbox.env["O2SPARC_USERNAME"], sandbox.env["O2SPARC_PASSWORD"]
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    number_file.write_text(str(uuid.uuid4().int % 10**12))  # new content: really uploaded
    with caplog.at_level(logging.DEBUG):
        assert logging.getLogger("urllib3").isEnabledFor(logging.DEBUG)
        solver = o2sparc.get_solver(SLEEPER, "2.0.2")
        job_id = solver.submit_job({"input_1": number_file, "input_2": 1, "input_3": 0})
        solver.wait(job_id, progress=False)
        solver.get_results(job_id)
        solver.get_job_log(job_id).cleanup()
    seen = caplog.text + "".join(capfd.readouterr())
    assert "/v0/files/content" in seen and ":start" in seen  # the requests were logged
    assert secret not in seen and token not in seen
    configuration = o2sparc.session.configuration
    assert configuration.verify_ssl is True and configuration.debug is False


def test_a_bare_api_client_is_refused_plain_http_too() -> None:
    import osparc

    configuration = osparc.Configuration(host="http://api.example.org", username="key",
                                         password="s3cr3t")
    with pytest.raises(InsecureTransportError) as err:
        O2SparcSolver(osparc.ApiClient(configuration), SLEEPER, "2.0.2")
    assert "s3cr3t" not in str(err.value)


def test_user_info_in_the_host_is_never_shown(make_client: Callable[..., SparcClient],
                                              sandbox: SandboxProcess) -> None:
    host = sandbox.env["O2SPARC_HOST"].replace("://", "://someone:hunter2@")
    o2sparc = make_client(O2SPARC_HOST=host, O2SPARC_PASSWORD="wrong").o2sparc
    with pytest.raises(AuthenticationError) as err:
        o2sparc.get_profile()
    for text in (str(err.value), repr(o2sparc), o2sparc.info(), repr(o2sparc.session)):
        assert "hunter2" not in text
