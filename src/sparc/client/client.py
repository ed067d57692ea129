"""``SparcClient``: one object, one configuration, one connection pool, every SPARC service.

Example::

    from sparc.client import SparcClient

    with SparcClient(connect=False, config_file="config.ini") as client:
        client.pennsieve.list_datasets(query="cancer", limit=2)
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sparc.client.config import Config
from sparc.client.errors import ArgumentError, ConfigError

if TYPE_CHECKING:
    from sparc.client._http import HttpCore
    from sparc.client.services._base import ServiceBase
    from sparc.client.services.o2sparc import O2SparcService
    from sparc.client.services.pennsieve import PennsieveService
    from sparc.client.services.zinc import ZincService

__all__ = ["SparcClient"]

log = logging.getLogger("sparc.client")

#: Built-in services: attribute name -> "module:Class", imported on first use.
BUILTIN_SERVICES: dict[str, str] = {
    "pennsieve": "sparc.client.services.pennsieve:PennsieveService",
    "o2sparc": "sparc.client.services.o2sparc:O2SparcService",
    "zinc": "sparc.client.services.zinc:ZincService",
}


class SparcClient:
    """The entry point to SPARC services.

    Parameters:
        config_file: optional INI file with a ``[global] default_profile=NAME`` and one section
            per profile. A missing file gives the defaults (with a warning); environment
            variables (``PENNSIEVE_API_HOST``, ``O2SPARC_HOST``, ...) override it.
        connect: call ``connect()`` on every service now (sign in where credentials are set).
        profile: the profile to use instead of ``default_profile``.
        config: a ready :class:`~sparc.client.Config` (or a mapping of settings) instead of a
            file; environment variables still apply to a mapping.
        http: a shared :class:`~sparc.client._http.HttpCore` to use (e.g. one with custom
            timeouts or retries); by default the client makes its own.

    Services are attributes, built on first use: ``client.pennsieve``.
    """

    def __init__(
        self,
        config_file: str | os.PathLike[str] | None = None,
        connect: bool = False,
        profile: str | None = None,
        *,
        config: Config | Mapping[str, Any] | None = None,
        http: HttpCore | None = None,
    ) -> None:
        if config is not None and config_file is not None:
            raise ArgumentError("pass config_file= or config=, not both")
        if profile is not None and (not isinstance(profile, str) or not profile.strip()):
            raise ArgumentError(f"profile must be a profile name (a section of the config "
                                f"file), got {type(profile).__name__} {profile!r}")
        if http is not None:
            from sparc.client._http import HttpCore

            if not isinstance(http, HttpCore):
                raise ArgumentError(f"http must be a sparc.client HttpCore (to share one "
                                    f"connection pool), got {type(http).__name__} {http!r}")
        if config is None:
            self.config = Config.load(config_file, profile=profile)
        elif isinstance(config, Config):
            self.config = config
        elif isinstance(config, Mapping):
            self.config = Config.from_mapping(config, profile=profile)
        else:
            raise ArgumentError(f"config must be a sparc.client.Config or a mapping of settings, "
                                f"got {type(config).__name__}")
        self._http: HttpCore | None = http
        self._services: dict[str, ServiceBase | Any] = {}
        self._factories: dict[str, str] = dict(BUILTIN_SERVICES)
        self.module_names: list[str] = list(self._factories)
        if connect:
            self.connect()

    # -- services -----------------------------------------------------------------------------
    @property
    def http(self) -> HttpCore:
        """The shared HTTP core (one connection pool for every service)."""
        if self._http is None:
            from sparc.client._http import HttpCore

            self._http = HttpCore()
        return self._http

    def _service(self, name: str) -> Any:
        if name not in self._services:
            module_name, _, class_name = self._factories[name].partition(":")
            cls = getattr(importlib.import_module(module_name), class_name)
            self._services[name] = cls(config=self.config, connect=False, http=self.http)
        return self._services[name]

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not found normally: the lazily built services.
        factories = self.__dict__.get("_factories", {})
        if name in factories:
            return self._service(name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute or service {name!r}")

    @property
    def pennsieve(self) -> PennsieveService:
        """Pennsieve Discover (public data) and, with credentials, the Pennsieve API."""
        return self._service("pennsieve")

    @property
    def o2sparc(self) -> O2SparcService:
        """o²S²PARC: upload inputs, run solver jobs, fetch results and logs (``o2sparc`` extra)."""
        return self._service("o2sparc")

    @property
    def zinc(self) -> ZincService:
        """Export organ scaffolds and MBF segmentations to mesh files (``zinc`` extra)."""
        return self._service("zinc")

    def add_module(
        self,
        paths: str | list[str],
        config: Mapping[str, Any] | None = None,
        connect: bool = True,
    ) -> None:
        """Add third-party services: every concrete ``ServiceBase`` subclass in the module(s).

        The service is reachable as ``client.<last part of the module path>``. Example::

            client.add_module("mylab.sparc_ext", config={"token": "..."}, connect=False)
            client.sparc_ext.info()
        """
        import inspect

        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, (list, tuple)) or not paths:
            raise ArgumentError(f"paths must be a module path such as "
                                f"'sparc.client.services.pennsieve' or a list of them, got "
                                f"{type(paths).__name__} {paths!r}")
        if config is not None and not isinstance(config, (Mapping, Config)):
            raise ArgumentError(f"config must be a mapping of settings (or a Config), got "
                                f"{type(config).__name__}")
        for path in paths:
            if not isinstance(path, str) or not path:
                raise ArgumentError(f"paths must be module paths such as "
                                    f"'sparc.client.services.pennsieve', got {path!r}")
            try:
                module = importlib.import_module(path)
            except ImportError as exc:
                raise ConfigError(f"cannot import module {path!r}: {exc}") from exc
            attribute_name = path.rsplit(".", 1)[-1]
            classes = _service_classes(module)
            if not classes:
                raise ConfigError(f"module {path!r} defines no concrete ServiceBase subclass")
            service_config = config if config is not None else self.config
            cls = classes[0]
            shared = {"http": self.http} if "http" in inspect.signature(cls).parameters else {}
            service = cls(config=service_config, connect=connect, **shared)
            self._services[attribute_name] = service
            self._factories.setdefault(attribute_name, f"{module.__name__}:{classes[0].__name__}")
            if attribute_name not in self.module_names:
                self.module_names.append(attribute_name)

    def connect(self) -> bool:
        """Call ``connect()`` on every service."""
        for name in self.module_names:
            self._service(name).connect()
        return True

    def get_config(self) -> Config:
        """The configuration in use (profile values after environment overrides)."""
        return self.config

    def set_profile(self, profile: str) -> Config:
        """Switch every built-in service to another profile of the same config file."""
        if self.config.source is None:
            raise ConfigError(f"cannot switch to profile {profile!r}: no config file was read; "
                              "pass config_file= to SparcClient")
        self.config = Config.load(self.config.source, profile=profile)
        for name in BUILTIN_SERVICES:
            if name in self._services:
                self._services[name].config = self.config
        return self.config

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close every service and release the shared connection pool."""
        for service in self._services.values():
            close = getattr(service, "close", None)
            if callable(close):
                close()
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> SparcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        profile = f" profile={self.config.profile!r}" if self.config.profile else ""
        return f"<SparcClient{profile} services={self.module_names}>"


def _service_classes(module: Any) -> list[type[ServiceBase]]:
    """The concrete ``ServiceBase`` subclasses a module defines or re-exports from its own package
    (``sparc.client.services.pennsieve`` re-exports ``PennsieveService`` from ``.service``),
    those it defines itself first; classes merely imported from elsewhere are left out."""
    import inspect

    from sparc.client.services._base import ServiceBase

    own, package = module.__name__, module.__name__ + "."
    found = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, ServiceBase) and not inspect.isabstract(obj)
             and (obj.__module__ == own or obj.__module__.startswith(package))]
    return sorted(found, key=lambda cls: cls.__module__ != own)
