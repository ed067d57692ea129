"""Errors of the Zinc service, all under :class:`sparc.client.errors.SparcError`.

::

    ZincError (SparcError)
    ├── ZincNotInstalledError (ImportError)   the ``zinc`` extra is missing (or Python >= 3.13)
    ├── UnknownFormatError (ArgumentError)    a format other than vtk/stl/obj/ply/glb/webgl
    ├── UnknownOrganError (ArgumentError)     an organ scaffoldmaker has no annotation terms for
    ├── NotExportableError (ArgumentError)    a file that is not a scaffold, Zinc or MBF file
    ├── NoExportableFileError (LookupError)   a dataset without a scaffold/Zinc/MBF file
    └── EmptyExportError                      the input loaded but holds no geometry

Example::

    from sparc.client.services.zinc import NotExportableError

    try:
        client.zinc.export("notes.txt")
    except NotExportableError as err:
        print(err)   # says what was found and what is accepted
"""

from __future__ import annotations

import sys

from sparc.client.errors import ArgumentError, SparcError

__all__ = [
    "ZincError",
    "ZincNotInstalledError",
    "UnknownFormatError",
    "UnknownOrganError",
    "NotExportableError",
    "NoExportableFileError",
    "EmptyExportError",
    "ACCEPTED_INPUTS",
]

#: What ``export()`` accepts, quoted in error messages.
ACCEPTED_INPUTS = ("a Scaffold Creator settings .json (with scaffold_settings.scaffoldPackage), "
                   "a Zinc .exf/.ex file, or an MBF XML segmentation (.xml)")


class ZincError(SparcError):
    """Base of every Zinc service error."""


class ZincNotInstalledError(ZincError, ImportError):
    """The ``zinc`` extra (cmlibs.zinc, scaffoldmaker, mbfxml2ex, meshio, trimesh) is missing."""

    def __init__(self, missing: str) -> None:
        major, minor = sys.version_info[:2]
        if (major, minor) >= (3, 13):
            hint = (f"cmlibs.zinc has no wheels for Python {major}.{minor}: use Python 3.11 or "
                    "3.12 and run pip install 'sparc.client[zinc]'")
        else:
            hint = "install it with: pip install 'sparc.client[zinc]'"
        super().__init__(f"the Zinc service needs {missing}, which is not installed; {hint}")
        self.missing = missing


class UnknownFormatError(ZincError, ArgumentError):
    """An export format that is not supported."""


class UnknownOrganError(ZincError, ArgumentError):
    """An organ name that scaffoldmaker has no annotation terms for."""


class NotExportableError(ZincError, ArgumentError):
    """A file that is not a scaffold settings JSON, a Zinc EX/EXF file or an MBF XML file (or is
    malformed)."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class NoExportableFileError(ZincError, LookupError):
    """A dataset (version) holds no file the Zinc service can export (or none named ``file=``)."""


class EmptyExportError(ZincError):
    """The input was read but yields no geometry (no elements with coordinates), so nothing
    would be written."""
