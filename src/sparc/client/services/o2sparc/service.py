"""``O2SparcService``: the o²S²PARC public API (``client.o2sparc``), on the official ``osparc``
client.

Example::

    o2sparc = SparcClient(connect=False).o2sparc      # O2SPARC_HOST/USERNAME/PASSWORD
    o2sparc.get_profile()                              # 'me@example.org'
    [s.key for s in o2sparc.list_solvers()]
    solver = o2sparc.get_solver(solver_key="simcore/services/comp/itis/sleeper",
                                solver_version="2.0.2")

Needs the ``o2sparc`` extra (``pip install 'sparc.client[o2sparc]'``); ``osparc`` is imported
on first use, never by ``import sparc.client``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sparc.client._http import HttpCore, redact_url
from sparc.client.config import Config
from sparc.client.errors import ArgumentError, ConfigError
from sparc.client.services._base import ServiceBase
from sparc.client.services.o2sparc._osparc import Session, Settings, osparc_version
from sparc.client.services.o2sparc.errors import (
    INSTALL_HINT,
    O2SparcNotInstalledError,
)
from sparc.client.services.o2sparc.models import SolverInfo
from sparc.client.services.o2sparc.solver import O2SparcSolver, checked_solver_key

__all__ = ["O2SparcService"]

log = logging.getLogger("sparc.client")


class O2SparcService(ServiceBase):
    """o²S²PARC: your profile, solvers and their releases, and jobs (see :class:`O2SparcSolver`).

    Host and credentials come from the config (``o2sparc_host``, ``o2sparc_username`` = API
    key, ``o2sparc_password`` = API secret) or ``O2SPARC_HOST``/``O2SPARC_USERNAME``/
    ``O2SPARC_PASSWORD``. Timeouts and the retry budget follow the client's HTTP core.
    """

    def __init__(self, config: Config | Mapping[str, Any] | None = None, connect: bool = False,
                 http: HttpCore | None = None) -> None:
        self._session: Session | None = None
        self._lock = threading.Lock()
        self._credentials: tuple[str, str] | None = None
        super().__init__(config=config, connect=connect, http=http)

    # -- settings and session ----------------------------------------------------------------
    @property
    def host(self) -> str:
        """The o²S²PARC API base URL in use."""
        return self.config.o2sparc_host.rstrip("/")

    def _settings(self) -> Settings:
        timeout = self.http.timeout
        retry = self.http.retry
        username, password = self._credentials or (self.config.o2sparc_username,
                                                    self.config.o2sparc_password)
        return Settings(host=self.host, username=username, password=password,
                        connect_timeout=timeout.connect or 10.0,
                        read_timeout=timeout.read or 30.0, max_retries=retry.max_retries,
                        backoff=retry.backoff, max_backoff=retry.max_backoff,
                        max_total=retry.max_total)

    @property
    def session(self) -> Session:
        """The official client's session (built on first use, again if the config changed).

        Raises :class:`MissingCredentialsError` without an API key/secret and
        :class:`O2SparcNotInstalledError` without the ``o2sparc`` extra."""
        settings = self._settings()
        with self._lock:
            if self._session is None or self._session.settings != settings:
                if self._session is not None:
                    self._session.close()
                self._session = Session(settings, http=self.http)
            return self._session

    # -- ServiceBase --------------------------------------------------------------------------
    def connect(self) -> Any:
        """Set up the official client (no request is sent); returns its ``osparc.ApiClient``,
        or None (with a log line) when credentials or the ``o2sparc`` extra are missing."""
        try:
            return self.session.api_client
        except (ConfigError, O2SparcNotInstalledError) as exc:
            log.info("o²S²PARC not connected: %s", exc)
            return None

    def info(self) -> str:
        version = osparc_version()
        client = f"osparc {version}" if version else f"osparc not installed: {INSTALL_HINT}"
        return f"o²S²PARC at {redact_url(self.host)} ({client})"

    def get_profile(self) -> str:
        """The signed-in user's login (e-mail), as the server sees the API key."""
        return str(self.get_user()["login"])

    def get_user(self) -> dict[str, Any]:
        """The signed-in user's profile: ``login``, ``first_name``, ``last_name``, ``role``,
        ``groups``..."""
        session = self.session
        profile = session.call("GET", "/v0/me", session.users.get_my_profile)
        data = dict(profile.to_dict())
        role = data.get("role")
        data["role"] = getattr(role, "value", role)
        return data

    def set_profile(self, profile_name: str, password: str | None = None) -> Any:
        """Switch to another profile of the config file (``set_profile("other")``), or, as in
        sparc.client 0.x, to another API key and secret (``set_profile(key, secret)``).
        Returns the new login."""
        if password is not None:
            if not isinstance(profile_name, str) or not profile_name or \
                    not isinstance(password, str) or not password:
                raise ConfigError("set_profile(key, secret) needs a non-empty API key and secret")
            self._credentials = (profile_name, password)
            return self.get_profile()
        self._credentials = None
        return super().set_profile(profile_name)

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
        super().close()

    def __repr__(self) -> str:
        return f"<O2SparcService {redact_url(self.host)}>"

    # -- solvers -----------------------------------------------------------------------------
    def list_solvers(self, all_releases: bool = False) -> list[SolverInfo]:
        """The solvers (latest release of each), or every release with ``all_releases=True``."""
        session = self.session
        if all_releases:
            items = session.call("GET", "/v0/solvers/releases",
                                 session.solvers.list_solvers_releases)
        else:
            items = session.call("GET", "/v0/solvers", session.solvers.list_solvers)
        return sorted((SolverInfo.from_api(item) for item in items or []),
                      key=lambda s: (s.key, _version_key(s.version)))

    def list_solver_releases(self, solver_key: str) -> list[SolverInfo]:
        """Every release of one solver, oldest first."""
        key = checked_solver_key(solver_key)
        session = self.session
        items = session.call("GET", f"/v0/solvers/{quote(key, safe='')}/releases",
                             session.solvers.list_solver_releases, key)
        return sorted((SolverInfo.from_api(item) for item in items or []),
                      key=lambda s: _version_key(s.version))

    def get_solver(self, solver_key: str, solver_version: str | None = None) -> O2SparcSolver:
        """A solver release to which jobs can be submitted (the latest without a version)."""
        return O2SparcSolver(self, solver_key, solver_version)

    # -- files ------------------------------------------------------------------------------
    def upload_file(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Upload a file (skipped when the server already has the same content and name);
        its record: ``id``, ``filename``, ``checksum``..."""
        file = Path(path)
        if not file.is_file():
            raise ArgumentError(f"{str(file)!r} is not a file")
        return dict(self.session.upload_file(file).to_dict())


def _version_key(version: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for piece in version.replace("-", ".").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return tuple(parts)
