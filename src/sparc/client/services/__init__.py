"""Services reachable from :class:`~sparc.client.SparcClient` (one sub-package each)."""

from sparc.client.services._base import ServiceBase

__all__ = ["ServiceBase"]
