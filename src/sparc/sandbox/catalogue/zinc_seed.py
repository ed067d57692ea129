"""The sandbox's Zinc datasets: 292 carries a real organ scaffold, 107 an MBF XML segmentation.

The files live in ``zinc_data/`` and are stored in the catalogue as ``content``, so neither the
catalogue build nor the running sandbox needs scaffoldmaker. They were produced by this module::

    python -m sparc.sandbox.catalogue.zinc_seed      # rewrites zinc_data/ (needs scaffoldmaker)

- ``Scaffold_Creator-settings.json``: scaffoldmaker's ``3D Stomach 1`` scaffold with its
  ``Rat 1`` parameter set, in Scaffold Creator's layout
  ``{"scaffold_settings": {"scaffoldPackage": ...}}`` (encoded by ``Scaffolds_JSONEncoder``).
- ``Scaffold_Creator.exf``: that scaffold generated and written by Zinc (nodes, elements,
  annotation groups), as Scaffold Creator saves it.
- ``10991_20180817_143553.xml``: the upstream test file ``3Dscaffold-CGRP-Mice-Dorsal-2.xml``
  (nih-sparc/sparc.client, Apache-2.0; see ``zinc_data/SOURCES.md``) under the name the guide's
  tutorial downloads from dataset 107.

``seed_zinc(builder)`` is called once by :mod:`sparc.sandbox.catalogue.build`.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "zinc_data"
SETTINGS = "Scaffold_Creator-settings.json"
EXF = "Scaffold_Creator.exf"
MBF = "10991_20180817_143553.xml"
SCAFFOLD_TYPE, PARAMETER_SET = "3D Stomach 1", "Rat 1"
#: 107 draws its ids from its own generator, so adding it shifts nothing else in the catalogue.
SEED_107 = 107_2018_0817


def read(name: str) -> str:
    """A data file's text, byte for byte (no newline translation)."""
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return f.read()


def seed_zinc(builder: Any) -> None:
    """Give 292's versions the real scaffold files and add dataset 107 (MBF segmentation)."""
    settings, exf = read(SETTINGS), read(EXF)
    for version in builder.versions:
        if version.dto["id"] != 292:
            continue
        changed = False
        for spec in version.files:
            name = spec.path.rsplit("/", 1)[-1]
            text = settings if name == SETTINGS else exf if name == EXF else None
            if text is not None:
                spec.content, spec.size, spec.seed = text, len(text.encode()), None
                spec.sha256 = hashlib.sha256(text.encode()).hexdigest()
                changed = True
        if changed:  # the version's manifest.json lists sizes: write it again
            others = [f for f in version.files if f.path != "manifest.json"]
            manifest = builder.manifest(version.dto, others, None)
            manifest.sha256 = hashlib.sha256((manifest.content or "").encode()).hexdigest()
            version.files[:] = others + [manifest]
    _dataset_107(builder)


def _dataset_107(builder: Any) -> None:
    from sparc.sandbox.catalogue.build import SPARC, SPARC4, FileSpec

    if any(v.dto["id"] == 107 for v in builder.versions):
        return
    saved, builder.rng = builder.rng, random.Random(SEED_107)
    try:
        dto = builder.dto(
            107, 1, "Neurolucida tracings of CGRP-immunoreactive fibers in the mouse stomach",
            "MBF Bioscience (Neurolucida 360) XML segmentations of the mouse stomach and "
            "oesophagus, with anatomical landmark contours for scaffold mapping.",
            ["stomach", "esophagus", "mouse", "segmentation", "CGRP"], SPARC, SPARC4)
        files = [FileSpec("files/dataset_description.xlsx", 13_406),
                 FileSpec("files/subjects.xlsx", 9_880),
                 FileSpec(f"files/derivative/sub-10991/{MBF}", len(read(MBF).encode()),
                          content=read(MBF))]
        for spec in files:
            spec.source_package_id = builder.package_id()
        builder.add(dto, files, {"animal_subject": 1, "researcher": 2})
    finally:
        builder.rng = saved


def generate() -> None:
    """Write ``zinc_data/`` settings and EXF with scaffoldmaker (deterministic)."""
    from cmlibs.zinc.context import Context
    from scaffoldmaker.scaffoldpackage import ScaffoldPackage
    from scaffoldmaker.scaffolds import Scaffolds, Scaffolds_decodeJSON, Scaffolds_JSONEncoder

    mesh_type = next(t for t in Scaffolds().getScaffoldTypes() if t.getName() == SCAFFOLD_TYPE)
    package = ScaffoldPackage(mesh_type, defaultParameterSetName=PARAMETER_SET)
    encoded = json.loads(json.dumps(package, cls=Scaffolds_JSONEncoder))
    text = json.dumps({"scaffold_settings": {"scaffoldPackage": encoded}}, indent=1) + "\n"
    (DATA / SETTINGS).write_text(text, encoding="utf-8", newline="")
    context = Context("sparc-sandbox")
    region = context.getDefaultRegion()
    package = Scaffolds_decodeJSON(encoded)  # generate from the file's settings, as users will
    package.generate(region)
    for group in package.getAnnotationGroups():
        group.getGroup().setManaged(True)
    info = region.createStreaminformationRegion()
    memory = info.createStreamresourceMemory()
    region.write(info)
    (DATA / EXF).write_bytes(memory.getBuffer()[1])
    print(f"wrote {DATA / SETTINGS} and {DATA / EXF}")


if __name__ == "__main__":
    generate()
