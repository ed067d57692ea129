"""Configuration: an optional INI file with profiles, overridden by environment variables.

The file names a default profile in ``[global]`` and holds one section per profile::

    [global]
    default_profile = sandbox

    [sandbox]
    pennsieve_api_host = http://127.0.0.1:8000

Each key can be overridden by the environment variable of the same name in upper case
(``PENNSIEVE_API_HOST``). With no file at all, the public defaults apply. Example::

    config = Config.load("config.ini", profile="sandbox")
    config.pennsieve_api_host

Pennsieve sign-in needs ``pennsieve_api_key`` and ``pennsieve_api_secret``. Users of the Pennsieve
CLI/Agent can point at its own profile file instead: ``pennsieve_profile_file`` (e.g.
``~/.pennsieve/config.ini``) and ``pennsieve_profile_name`` (a section of that file; default its
``[global] default_profile``). Its ``api_token``, ``api_secret``, ``api_host`` and ``api2_host``
fill the settings this profile and the environment leave unset. ``pennsieve_profile_name``
alone reads ``~/.pennsieve/config.ini`` when that file exists and has the section.
"""

from __future__ import annotations

import configparser
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sparc.client.errors import ArgumentError, ConfigError

__all__ = ["Config", "DEFAULT_PENNSIEVE_API_HOST", "DEFAULT_PENNSIEVE_API2_HOST",
           "DEFAULT_O2SPARC_HOST", "SECRET_KEYS", "SECRET_PARAM_WORDS"]

log = logging.getLogger("sparc.client")

DEFAULT_PENNSIEVE_API_HOST = "https://api.pennsieve.io"
DEFAULT_PENNSIEVE_API2_HOST = "https://api2.pennsieve.io"
#: The Pennsieve CLI's and Agent's own profile file.
PENNSIEVE_CLI_CONFIG = "~/.pennsieve/config.ini"
#: Pennsieve profile file keys -> our settings.
_PENNSIEVE_FILE_KEYS = {"api_token": "pennsieve_api_key", "api_secret": "pennsieve_api_secret",
                        "api_host": "pennsieve_api_host", "api2_host": "pennsieve_api2_host"}
DEFAULT_O2SPARC_HOST = "https://api.osparc.io"
DEFAULT_SCICRUNCH_HOST = "https://scicrunch.org/api/1/"

#: Keys whose values are never shown in ``repr``, logs or error messages.
SECRET_KEYS = frozenset(
    {"pennsieve_api_secret", "o2sparc_password", "scicrunch_api_key", "pennsieve_api_key",
     "o2sparc_username"}
)
#: Query parameters (and log words) whose names contain one of these never show their values
#: in logs or errors; here, in a light module, so the CLI can mask logs without loading httpx.
SECRET_PARAM_WORDS = ("key", "secret", "token", "password", "passwd", "signature", "credential",
                      "auth", "session")
_HOST_KEYS = ("pennsieve_api_host", "pennsieve_api2_host", "pennsieve_cognito_endpoint",
              "pennsieve_s3_endpoint", "o2sparc_host", "scicrunch_host")


@dataclass(frozen=True)
class Config(Mapping[str, Any]):
    """The settings of one profile, after the environment has been applied.

    It reads like the profile's INI section too: ``config["pennsieve_api_host"]``,
    ``config.get("pennsieve_profile_name")``. Unknown keys (for third-party modules)
    are kept in ``extra``.
    """

    pennsieve_api_host: str = DEFAULT_PENNSIEVE_API_HOST
    pennsieve_api_key: str | None = field(default=None, repr=False)
    pennsieve_api_secret: str | None = field(default=None, repr=False)
    pennsieve_profile_name: str | None = None
    pennsieve_api2_host: str = DEFAULT_PENNSIEVE_API2_HOST
    pennsieve_cognito_endpoint: str | None = None
    pennsieve_s3_endpoint: str | None = None
    pennsieve_profile_file: str | None = None
    o2sparc_host: str = DEFAULT_O2SPARC_HOST
    o2sparc_username: str | None = field(default=None, repr=False)
    o2sparc_password: str | None = field(default=None, repr=False)
    scicrunch_host: str = DEFAULT_SCICRUNCH_HOST
    scicrunch_api_key: str | None = field(default=None, repr=False)
    profile: str | None = None
    source: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        profile: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        """Read ``config_file`` (optional) for ``profile`` (default: ``[global] default_profile``),
        then apply environment overrides.

        A ``config_file`` that does not exist gives the defaults, with a warning (``warnings``,
        so a notebook shows it, and the log); one that exists but cannot be parsed, or names a
        missing profile, raises :class:`ConfigError`.
        """
        values: dict[str, str] = {}
        source: Path | None = None
        if config_file is not None:
            if not isinstance(config_file, (str, os.PathLike)):
                raise ArgumentError(f"config_file must be a path (str or pathlib.Path), "
                                    f"got {type(config_file).__name__} {config_file!r}")
            if isinstance(config_file, str) and "\x00" in config_file:
                raise ArgumentError(f"config_file contains a NUL character: {config_file!r}")
            path = Path(config_file).expanduser()
            if path.exists():
                source = path
                profile, values = _read_profile(path, profile)
            else:
                message = (f"config file {str(path)!r} not found; using the defaults and the "
                           "environment (public data works without one)")
                log.warning("%s", message)
                warnings.warn(message, UserWarning, stacklevel=3)
                if profile is not None:
                    raise ConfigError(
                        f"profile {profile!r} asked for, but config file {str(path)!r} does not exist"
                    )
        return cls.from_mapping(values, profile=profile, source=source, environ=environ)

    @classmethod
    def from_mapping(
        cls,
        values: Mapping[str, Any],
        *,
        profile: str | None = None,
        source: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        """Build from a plain mapping (e.g. an INI section), then apply environment overrides."""
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)} - {"profile", "source", "extra"}
        merged: dict[str, Any] = {str(k).lower(): v for k, v in values.items()}
        for key in known:
            value = env.get(key.upper())
            if value:
                merged[key] = value
        given: dict[str, Any] = {k: (str(v) if v is not None else None)
                                 for k, v in merged.items() if k in known}
        extra = {k: str(v) for k, v in merged.items() if k not in known}
        _apply_pennsieve_file(given)
        for key in _HOST_KEYS:
            host = given.get(key)
            if host is not None:
                given[key] = _check_host(key, host, source)
            elif key in given:
                del given[key]
        return cls(profile=profile, source=source, extra=extra, **given)

    # -- mapping view -------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """Every key with a value, including ``extra`` (secrets included: do not log it)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("extra", "source") and getattr(self, f.name) is not None}
        out.update(self.extra)
        return out

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRET_KEYS or k in self.extra else v)
                 for k, v in self.as_dict().items()}
        where = f", source={str(self.source)!r}" if self.source else ""
        return f"Config({shown}{where})"

    __str__ = __repr__


def _parse_ini(path: Path, label: str, hint: str = "") -> configparser.ConfigParser:
    """``path`` parsed (no interpolation), or :class:`ConfigError` naming it as ``label``."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"{label} {str(path)!r}{hint} cannot be read: "
                          f"{exc.strerror or exc}") from exc
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label} {str(path)!r} cannot be parsed: "
                          f"{_parse_problem(exc)}") from None
    return parser


def _read_profile(path: Path, profile: str | None) -> tuple[str | None, dict[str, str]]:
    parser = _parse_ini(path, "config file")
    if profile is None and parser.has_option("global", "default_profile"):
        profile = parser.get("global", "default_profile").strip() or None
    if profile is None:
        for candidate in ("default", "sparc"):
            if parser.has_section(candidate):
                profile = candidate
                break
    if profile is None:
        return None, dict(parser.defaults())
    if not parser.has_section(profile):
        sections = [s for s in parser.sections() if s != "global"]
        raise ConfigError(
            f"config file {str(path)!r} has no section [{profile}] for the profile asked for; "
            f"its profiles are: {', '.join(sections) or 'none'}"
        )
    return profile, dict(parser.items(profile))


def _parse_problem(exc: Exception) -> str:
    """What is wrong with a config file, without its text (a quoted line may hold a secret);
    the error is not chained either, for the same reason."""
    line = getattr(exc, "lineno", None)
    errors = getattr(exc, "errors", None)
    if line is None and errors:
        line = errors[0][0]
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    return f"{type(exc).__name__}" + (f" at line {line}" if line is not None else "")


def _apply_pennsieve_file(given: dict[str, Any]) -> None:
    """Fill unset Pennsieve settings from the Pennsieve CLI's profile file, when named.

    ``pennsieve_profile_file`` given: the file must exist and hold the profile (else
    :class:`ConfigError`). Only ``pennsieve_profile_name`` given: ``~/.pennsieve/config.ini`` is
    read when it exists and has that section (older configs named the Agent's profile so).
    """
    named = given.get("pennsieve_profile_file")
    profile = given.get("pennsieve_profile_name") or None
    if not named and not profile:
        return
    path = Path(named or PENNSIEVE_CLI_CONFIG).expanduser()
    if not named and not path.is_file():
        return
    parser = _parse_ini(path, "pennsieve_profile_file", " (or $PENNSIEVE_PROFILE_FILE)")
    if profile is None and parser.has_option("global", "default_profile"):
        profile = parser.get("global", "default_profile").strip() or None
    if profile is None or not parser.has_section(profile):
        if not named:
            log.debug("%s has no Pennsieve profile [%s]; not using it", path, profile)
            return
        sections = [s for s in parser.sections() if s != "global"]
        raise ConfigError(
            f"pennsieve_profile_file {str(path)!r} has no profile "
            f"[{profile or '(none named: set pennsieve_profile_name)'}]; its profiles are: "
            f"{', '.join(sections) or 'none'}")
    for file_key, key in _PENNSIEVE_FILE_KEYS.items():
        value = parser.get(profile, file_key, fallback="").strip()
        if value and not given.get(key):
            given[key] = value
    if not given.get("pennsieve_profile_name"):
        given["pennsieve_profile_name"] = profile


def _check_host(key: str, value: str, source: Path | None) -> str:
    url = value.strip().rstrip("/")
    where = f" in {str(source)!r}" if source else ""
    problem = None
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problem = "it is not an http(s) URL"
        elif not parts.hostname:
            problem = "it names no host"
        elif any(c.isspace() or c in "<>\"{}|\\^`" for c in parts.netloc):
            problem = "its host part holds a space or a character URLs do not allow"
        else:
            parts.port  # noqa: B018 - raises ValueError for a bad port
            parts.hostname.encode("idna")
    except (ValueError, UnicodeError) as exc:
        problem = f"it is not a valid URL ({exc})"
    if problem:
        raise ConfigError(
            f"{key}{where} (or ${key.upper()}) must be an http(s) URL such as "
            f"https://api.example.org, got {value!r}: {problem}"
        )
    return url
