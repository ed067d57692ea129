"""The Pennsieve service (``client.pennsieve``), its result types, and ``Pennsieve``: the
agent-free stand-in for the ``pennsieve`` 7.x client (``from sparc.client.services.pennsieve
import Pennsieve``)."""

from sparc.client._download import DownloadResult, FileResult
from sparc.client.services.pennsieve.agent import Pennsieve
from sparc.client.services.pennsieve.paths import FileRef, file_ref, relative_path
from sparc.client.services.pennsieve.service import PennsieveService
from sparc.client.services.pennsieve.upload import UploadResult

__all__ = ["PennsieveService", "Pennsieve", "DownloadResult", "FileResult", "UploadResult",
           "FileRef", "file_ref", "relative_path"]
