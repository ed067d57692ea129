"""Configuration: INI profiles, environment overrides, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sparc.client import SparcClient
from sparc.client.config import DEFAULT_PENNSIEVE_API_HOST, Config
from sparc.client.errors import ArgumentError, ConfigError

INI = """\
[global]
default_profile = lab

[lab]
pennsieve_api_host = http://127.0.0.1:9999/
pennsieve_profile_name = lab-profile
o2sparc_username = alice
o2sparc_password = s3cret
custom_key = kept

[other]
pennsieve_api_host = https://api.example.org
"""


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "config.ini"
    path.write_text(INI)
    return path


def test_defaults_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PENNSIEVE_API_HOST", raising=False)
    config = Config.load(None, environ={})
    assert config.pennsieve_api_host == DEFAULT_PENNSIEVE_API_HOST
    assert config.o2sparc_host == "https://api.osparc.io"
    assert config.profile is None and config.source is None


def test_missing_file_warns_and_uses_defaults(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sparc.client"), \
            pytest.warns(UserWarning, match="nope.ini.*not found"):
        config = Config.load(tmp_path / "nope.ini", environ={})
    assert config.pennsieve_api_host == DEFAULT_PENNSIEVE_API_HOST
    assert "nope.ini" in caplog.text and "not found" in caplog.text


def test_default_profile_read_and_host_normalised(ini: Path) -> None:
    config = Config.load(ini, environ={})
    assert config.profile == "lab"
    assert config.source == ini
    assert config.pennsieve_api_host == "http://127.0.0.1:9999"
    assert config["pennsieve_profile_name"] == "lab-profile"
    assert config.get("custom_key") == "kept"  # third-party keys survive


def test_explicit_profile_wins(ini: Path) -> None:
    assert Config.load(ini, profile="other", environ={}).pennsieve_api_host == \
        "https://api.example.org"


def test_environment_overrides_file(ini: Path) -> None:
    config = Config.load(ini, environ={"PENNSIEVE_API_HOST": "https://env.example.org",
                                       "O2SPARC_PASSWORD": "from-env"})
    assert config.pennsieve_api_host == "https://env.example.org"
    assert config.o2sparc_password == "from-env"


def test_secrets_never_in_repr(ini: Path) -> None:
    text = repr(Config.load(ini, environ={}))
    assert "s3cret" not in text and "alice" not in text and "***" in text


def test_unparsable_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.ini"
    bad.write_text("this is not [ini\nkey without section = 1\n")
    with pytest.raises(ConfigError, match="broken.ini"):
        Config.load(bad, environ={})


def test_unknown_profile_lists_profiles(ini: Path) -> None:
    with pytest.raises(ConfigError, match=r"no section \[missing\].*lab, other"):
        Config.load(ini, profile="missing", environ={})


def test_bad_host_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.ini"
    path.write_text("[global]\ndefault_profile=p\n[p]\npennsieve_api_host = ftp://x\n")
    with pytest.raises(ConfigError, match="pennsieve_api_host.*http"):
        Config.load(path, environ={})
    with pytest.raises(ConfigError, match="PENNSIEVE_API_HOST"):
        Config.load(None, environ={"PENNSIEVE_API_HOST": "not a url"})


def test_sparc_client_surface(ini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PENNSIEVE_API_HOST", raising=False)
    with SparcClient(connect=False, config_file=str(ini)) as client:
        assert client.module_names[0] == "pennsieve" and "zinc" in client.module_names
        assert client.get_config().profile == "lab"
        assert client.pennsieve.host == "http://127.0.0.1:9999"
        assert client.pennsieve.get_profile() == "lab-profile"
        assert "127.0.0.1:9999" in client.pennsieve.info()
        assert client.pennsieve.set_profile("other") == "other"
        assert client.pennsieve.host == "https://api.example.org"
        with pytest.raises(AttributeError, match="no attribute or service 'nothing'"):
            client.nothing  # noqa: B018
    assert client.http.closed  # released; the next request opens a new pool


def test_set_profile_without_file_is_clear() -> None:
    with SparcClient(connect=False) as client, pytest.raises(ConfigError, match="config_file"):
        client.pennsieve.set_profile("lab")


@pytest.fixture
def labext(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A third-party service module on sys.path; its name."""
    (tmp_path / "labext.py").write_text(
        "from sparc.client.services import ServiceBase\n"
        "class LabService(ServiceBase):\n"
        "    def connect(self): self.connected = True; return self\n"
        "    def info(self): return 'lab'\n"
        "    def get_profile(self): return self.config.get('token')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "labext"


def test_add_module_third_party(labext: str) -> None:
    with SparcClient(connect=False) as client:
        client.add_module(labext, config={"token": "t-1"}, connect=True)
        assert "labext" in client.module_names
        assert client.labext.connected and client.labext.get_profile() == "t-1"
        with pytest.raises(ConfigError, match="no concrete ServiceBase"):
            client.add_module("json", connect=False)


def test_client_set_profile_switches_services(ini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PENNSIEVE_API_HOST", raising=False)
    with SparcClient(config_file=ini) as client:
        assert client.pennsieve.host == "http://127.0.0.1:9999"
        client.set_profile("other")
        assert client.get_config().profile == "other"
        assert client.pennsieve.host == "https://api.example.org"


def test_unknown_keys_are_masked_and_config_hashes(tmp_path: Path) -> None:
    path = tmp_path / "c.ini"
    path.write_text("[global]\ndefault_profile=p\n[p]\nmylab_api_key = TOPSECRET\n")
    config = Config.load(path, environ={})
    assert "TOPSECRET" not in repr(config) and config["mylab_api_key"] == "TOPSECRET"
    assert hash(config) == hash(Config.load(path, environ={}))


def test_a_folder_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        Config.load(tmp_path, environ={})


def test_add_module_shares_the_pool(labext: str) -> None:
    with SparcClient() as client:
        client.add_module(labext, connect=False)
        assert client.labext.http is client.http is client.pennsieve.http


@pytest.mark.parametrize("bad", [123, 4.5, ["config.ini"], b"config.ini"])
def test_config_file_of_the_wrong_type_is_an_argument_error(bad: object) -> None:
    with pytest.raises(ArgumentError, match="config_file must be a path"):
        SparcClient(config_file=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["http://[::1", "http://a b", "http://x:99999", "ftp://x", "x"])
def test_malformed_host_from_the_environment_is_a_config_error(host: str) -> None:
    with pytest.raises(ConfigError, match="PENNSIEVE_API_HOST"):
        Config.load(None, environ={"PENNSIEVE_API_HOST": host})


def test_config_and_http_can_be_injected(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparc.client._http import HttpCore

    http = HttpCore()
    config = Config.from_mapping({"pennsieve_api_host": "http://127.0.0.1:1"}, environ={})
    client = SparcClient(config=config, http=http)
    assert client.config is config and client.http is http
    assert client.pennsieve.http is http and client.pennsieve.host == "http://127.0.0.1:1"
    monkeypatch.delenv("PENNSIEVE_API_HOST", raising=False)
    mapped = SparcClient(config={"pennsieve_api_host": "http://127.0.0.1:2"})
    assert mapped.config.pennsieve_api_host == "http://127.0.0.1:2"
    with pytest.raises(ArgumentError):
        SparcClient(config_file="a.ini", config=config)
    with pytest.raises(ArgumentError):
        SparcClient(config=42)  # type: ignore[arg-type]


def test_add_module_finds_a_re_exported_service() -> None:
    """The tutorial's call: the package re-exports PennsieveService from its .service module."""
    client = SparcClient(connect=False)
    client.add_module(config={"pennsieve_profile_name": "ci"},
                      paths="sparc.client.services.pennsieve", connect=False)
    assert type(client.pennsieve).__name__ == "PennsieveService"
    assert client.pennsieve.get_profile() == "ci"
    assert client.pennsieve.http is client.http


def test_add_module_with_a_bad_path_is_clear() -> None:
    with pytest.raises(ConfigError, match="cannot import module"):
        SparcClient().add_module("no.such.module_here", connect=False)
    with pytest.raises(ArgumentError):
        SparcClient().add_module([42], connect=False)  # type: ignore[list-item]
