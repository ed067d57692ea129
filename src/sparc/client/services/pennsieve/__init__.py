"""The Pennsieve service (``client.pennsieve``)."""

from sparc.client.services.pennsieve.paths import FileRef, file_ref, relative_path
from sparc.client.services.pennsieve.service import PennsieveService

__all__ = ["PennsieveService", "FileRef", "file_ref", "relative_path"]
