"""What every service (built-in or third-party) looks like to :class:`~sparc.client.SparcClient`."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from sparc.client._http import HttpCore
from sparc.client.config import Config
from sparc.client.errors import ConfigError


class ServiceBase(abc.ABC):
    """A service reachable as ``client.<name>``.

    Subclasses are built as ``Service(config=..., connect=..., http=...)``; ``http`` is the
    client's shared :class:`~sparc.client._http.HttpCore` (a standalone service makes its own).
    Third-party services added with ``client.add_module(...)`` may take only ``config`` and
    ``connect``, and receive the profile as a mapping.
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | None = None,
        connect: bool = False,
        http: HttpCore | None = None,
    ) -> None:
        if isinstance(config, Config):
            self.config = config
        else:
            self.config = Config.from_mapping(config or {})
        self._owns_http = http is None
        self.http = http if http is not None else HttpCore()
        if connect:
            self.connect()

    @abc.abstractmethod
    def connect(self) -> Any:
        """Open a session (sign in when credentials are configured)."""

    @abc.abstractmethod
    def info(self) -> str:
        """A one-line description of the service and where it points."""

    @abc.abstractmethod
    def get_profile(self) -> Any:
        """Who or what this service is using (profile name, signed-in user)."""

    def set_profile(self, profile_name: str) -> Any:
        """Switch this service to another profile of the same config file
        (``SparcClient.set_profile`` switches every service)."""
        if self.config.source is None:
            raise ConfigError(
                f"cannot switch to profile {profile_name!r}: no config file was read; "
                "pass config_file= to SparcClient"
            )
        self.config = Config.load(self.config.source, profile=profile_name)
        return self.get_profile()

    def close(self) -> None:
        """Release connections this service opened itself."""
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> ServiceBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
