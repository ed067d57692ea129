"""The package version, read once (lazily) from the installed metadata."""

from functools import cache


@cache
def package_version() -> str:
    """``sparc.client``'s version, e.g. ``"0.3.0"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sparc.client")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0.0.0+unknown"
