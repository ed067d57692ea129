"""Zinc: export organ scaffolds and MBF segmentations to VTK, STL, OBJ, PLY, GLB and WebGL.

Example::

    from sparc.client import SparcClient

    paths = SparcClient(connect=False).zinc.export(292, format="stl", output="meshes")

The heavy packages (the ``zinc`` extra) are imported only when an export runs.
"""

from sparc.client.services.zinc import errors as _errors
from sparc.client.services.zinc.errors import *  # noqa: F403  (every name in errors.__all__)
from sparc.client.services.zinc.service import FORMATS, ZincService

__all__ = ["ZincService", "FORMATS", *_errors.__all__]
