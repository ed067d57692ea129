"""``analyse()``: which groups of an MBF XML segmentation scaffoldmaker's annotation terms know.

Example::

    analyse("seg.xml", ["stomach", "esophagus"], "Mice")
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from sparc.client.errors import ArgumentError
from sparc.client.services.zinc.errors import NotExportableError, UnknownOrganError

#: A group named after an ontology URL (e.g. ``http://uri.interlex.org/base/ilx_0793091``)
#: is looked up as ``ILX:0793091``.
TERM_URL = re.compile(r"/*([a-zA-Z]+)_*(\d+)$")


@lru_cache(maxsize=1)
def organ_terms() -> dict[str, Callable[[str], Any]]:
    """Every organ scaffoldmaker has annotation terms for: ``{"stomach": get_stomach_term}``."""
    import importlib
    import pkgutil

    from sparc.client.services.zinc._engine import require

    annotation = require("scaffoldmaker.annotation")
    organs: dict[str, Callable[[str], Any]] = {}
    for module in pkgutil.iter_modules(annotation.__path__):
        if module.name.endswith("_terms"):
            organ = module.name[: -len("_terms")]
            getter = getattr(importlib.import_module(f"{annotation.__name__}.{module.name}"),
                             f"get_{organ}_term", None)
            if callable(getter):
                organs[organ.replace("_", "")] = getter
    return dict(sorted(organs.items()))


def _known(group: str, getters: list[Callable[[str], Any]]) -> bool:
    names = [group]
    match = TERM_URL.search(group)
    if match and "/" in group:
        names.append(f"{match.group(1).upper()}:{match.group(2)}")
    for getter in getters:
        for name in names:
            try:
                getter(name)
                return True
            except NameError:
                continue
    return False


def analyse(input_data_file_name: str | os.PathLike[str], organs: str | Sequence[str],
            species: str | None = None) -> str:
    """The mapping-suitability message of an MBF XML file for ``organs`` (see
    :meth:`ZincService.analyse`)."""
    if isinstance(organs, str):
        organs = [organs]
    if not organs or not all(isinstance(o, str) for o in organs):
        raise ArgumentError(f"organs must be an organ name or a list of names, got {organs!r}")
    if species is not None and not isinstance(species, str):
        raise ArgumentError(f"species must be a name such as 'Mice' or None, got {species!r}")
    known_organs = organ_terms()
    getters = []
    for organ in organs:
        key = organ.lower().replace(" ", "").replace("_", "")
        if key not in known_organs:
            raise UnknownOrganError(f"The {organ.lower()} organ is not handled by the mapping "
                                    f"tool; known organs: {', '.join(known_organs)}")
        getters.append(known_organs[key])
    name = os.fspath(input_data_file_name)
    path = Path(name)
    if path.suffix.lower() != ".xml":
        raise NotExportableError(f"Input file must be an MBF XML file (.xml), got {name!r}",
                                 path=name)
    from sparc.client.services.zinc import _engine

    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise NotExportableError(f"{name!r} {what}; analyse() takes an MBF XML segmentation "
                                 "file (.xml)", path=name)
    try:
        contents = _engine.read_mbf(path)
    except NotExportableError as exc:
        if "not an MBF segmentation" not in str(exc):
            raise
        contents = None  # well-formed XML of another kind: no groups
    groups: list[str] = []
    if contents is not None:
        context, region = _engine.new_region("sparc-analyse")
        zinc = _engine.require("mbfxml2ex.zinc")
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            zinc.load(region, contents, None)
        groups = [g.getName() for g in _engine.group_names(region.getFieldmodule())]
    if not groups:
        return (f"The data file {name} doesn't have any groups, "
                f"therefore this data file is not suitable for mapping.")
    unknown = [g for g in groups if not _known(g, getters)]
    if len(unknown) == len(groups):
        return (f"The data file {name} is not suited for mapping to the given organ: none of its "
                f"groups is an annotation term of {', '.join(o.lower() for o in organs)}; "
                f"its groups are {', '.join(unknown)}.")
    suited = f"The data file {name} is suited for mapping to the given organ."
    if not unknown:
        return suited
    return (f"{suited} However, the mapping tool does not have the following groups defined by "
            f"default; {', '.join(unknown)}.")
