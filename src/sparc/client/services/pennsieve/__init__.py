"""The Pennsieve service (``client.pennsieve``) and the download result types."""

from sparc.client._download import DownloadResult, FileResult
from sparc.client.services.pennsieve.paths import FileRef, file_ref, relative_path
from sparc.client.services.pennsieve.service import PennsieveService

__all__ = ["PennsieveService", "DownloadResult", "FileResult", "FileRef", "file_ref",
           "relative_path"]
