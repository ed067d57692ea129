"""``client.zinc``: export SPARC organ scaffolds and MBF segmentations to common mesh formats.

Example::

    from sparc.client import SparcClient

    client = SparcClient(connect=False)
    client.zinc.export(292, format="stl", output="meshes/")      # a dataset's scaffold
    client.zinc.export("cube.exf", format=["vtk", "glb"])        # a local file
    client.zinc.analyse("segmentation.xml", ["stomach", "esophagus"], "Mice")

Needs the ``zinc`` extra (``pip install 'sparc.client[zinc]'``); nothing heavy is imported until
an export runs.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparc.client.errors import ArgumentError, UnsafePathError
from sparc.client.services._base import ServiceBase
from sparc.client.services.zinc.errors import (
    ACCEPTED_INPUTS,
    EmptyExportError,
    NoExportableFileError,
    NotExportableError,
    UnknownFormatError,
    UnknownOrganError,
)

__all__ = ["ZincService", "FORMATS"]

log = logging.getLogger("sparc.client")

FORMATS = ("vtk", "stl", "obj", "ply", "glb", "webgl")
DEFAULT_REFINEMENT = 6
#: Dataset files the service can export, by name.
SETTINGS_NAME = re.compile(r"settings\.json$", re.IGNORECASE)
ZINC_NAME = re.compile(r"\.(exf|ex)$", re.IGNORECASE)
MBF_NAME = re.compile(r"\.xml$", re.IGNORECASE)


def _formats(format: str | Sequence[str]) -> list[str]:
    if isinstance(format, str):
        wanted: list[Any] = [format]
    elif isinstance(format, Sequence):
        wanted = list(format)
    else:
        raise UnknownFormatError(f"format must be a format name or a list of names, got "
                                 f"{format!r}; accepted: {', '.join(FORMATS)}")
    if not wanted:
        raise UnknownFormatError(f"no export format given; accepted: {', '.join(FORMATS)}")
    out = []
    for fmt in wanted:
        name = fmt.lower().lstrip(".") if isinstance(fmt, str) else fmt
        if name == "gltf":
            raise UnknownFormatError("format 'gltf' is not offered (its side buffers have fixed "
                                     "names and clash); use 'glb', the one-file glTF")
        if name not in FORMATS:
            raise UnknownFormatError(f"unknown export format {fmt!r}; accepted: "
                                     f"{', '.join(FORMATS)}")
        if name not in out:
            out.append(name)
    return out


def _check_options(refinement: Any, tube_radius: Any) -> None:
    if isinstance(refinement, bool) or not isinstance(refinement, int) or not 1 <= refinement <= 64:
        raise ArgumentError(f"refinement must be a whole number from 1 to 64, got {refinement!r}")
    if tube_radius is not None and (isinstance(tube_radius, bool)
                                    or not isinstance(tube_radius, int | float)
                                    or not tube_radius > 0):
        raise ArgumentError(f"tube_radius must be a positive number or None, got {tube_radius!r}")


def _folder(output: Any) -> Path:
    """The output folder (resolved); an existing file there is an :class:`ArgumentError`."""
    if output is not None and not isinstance(output, str | os.PathLike):
        raise ArgumentError(f"output must be a folder path or None, got {output!r}")
    folder = Path(output if output is not None else ".").expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ArgumentError(f"output must be a folder, but {str(folder)!r} is an existing file")
    return folder


def _inside(folder: Path, name: str) -> Path:
    """``folder/name``, refusing names that would leave ``folder``."""
    target = (folder / name).resolve()
    if target.parent != folder or name in ("", ".", ".."):
        raise UnsafePathError(name, f"would be written outside {str(folder)!r}")
    return target


def _publish(folder: Path, name: str, write: Any) -> Path:
    """Write via ``write(tmp_path)`` to a temporary name in ``folder``, then rename to ``name``."""
    target = _inside(folder, name)
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.part"
    try:
        write(tmp)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise EmptyExportError(f"the {name!r} export wrote nothing")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class ZincService(ServiceBase):
    """Export organ scaffolds (Scaffold Creator settings, Zinc EX/EXF) and MBF XML segmentations
    to VTK, STL, OBJ, PLY, glTF (GLB) and ZincJS WebGL JSON, from SPARC datasets or local files.

    Each export runs in a fresh Zinc context, so exports never leak into each other.
    """

    def __init__(self, config: Any = None, connect: bool = False, http: Any = None) -> None:
        super().__init__(config=config, connect=connect, http=http)
        self._pennsieve: Any = None

    def __enter__(self) -> ZincService:
        return self

    # -- ServiceBase --------------------------------------------------------------------------
    def connect(self) -> ZincService:
        """Nothing to sign in to; returns the service (the ``zinc`` extra is checked on use)."""
        return self

    def info(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            zinc = f"cmlibs.zinc {version('cmlibs.zinc')}"
        except PackageNotFoundError:
            zinc = "cmlibs.zinc not installed: pip install 'sparc.client[zinc]'"
        return f"Zinc export ({zinc}); datasets from {self.config.pennsieve_api_host}"

    def get_profile(self) -> str | None:
        return self.config.profile

    @property
    def pennsieve(self) -> Any:
        """The Pennsieve service used to find and download dataset files (same config and
        connection pool as this service)."""
        if self._pennsieve is None:
            from sparc.client.services.pennsieve import PennsieveService

            self._pennsieve = PennsieveService(config=self.config, http=self.http)
        return self._pennsieve

    # -- the general entry point --------------------------------------------------------------
    def export(
        self,
        source: int | str | os.PathLike[str],
        format: str | Sequence[str] = "vtk",
        output: str | os.PathLike[str] | None = None,
        version: int | None = None,
        file: str | None = None,
        *,
        refinement: int = DEFAULT_REFINEMENT,
        tube_radius: float | None = None,
        progress: bool | None = None,
    ) -> list[Path]:
        """Export a scaffold or segmentation; returns the written paths.

        ``source`` is a SPARC dataset id (an int, or digits naming no local file (a folder of
        that name does not count): its scaffold
        settings JSON, Zinc ``.exf``/``.ex`` and MBF ``.xml`` files are found through Discover
        and downloaded to a temporary folder: all of them, or only ``file``, a path or name
        within the dataset) or a local file.
        ``format`` is one of ``vtk stl obj ply glb webgl`` (or a list of them; one load serves
        all). Files go to the folder ``output`` (default: the current folder) named after the
        input, e.g. ``Scaffold_Creator-settings.stl``. Surfaces follow the true curved geometry
        at ``refinement`` divisions per element edge; MBF lines stay lines in VTK and become
        tubes of ``tube_radius`` (default: the file's own radii) in the other formats. Example::

            client.zinc.export(107, "glb", "out/", file="10991_20180817_143553.xml")
        """
        from sparc.client.services.zinc import _engine

        _engine.check_installed()  # before any download
        formats = _formats(format)
        _check_options(refinement, tube_radius)
        folder = _folder(output)
        if isinstance(source, os.PathLike) or (isinstance(source, str) and (
                not source.strip().isdigit() or os.path.isfile(source))):
            if file is not None or version is not None:
                raise ArgumentError("file= and version= apply to dataset sources only; "
                                    f"{str(source)!r} is a local path")
            path = Path(source).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            return self._convert(path, formats, folder, _stem(path), refinement, tube_radius,
                                 progress=progress)
        if isinstance(source, bool) or not isinstance(source, int | str):
            raise ArgumentError(f"source must be a dataset id or a local path, got {source!r}")
        return self._export_dataset(int(source), formats, folder, version, file, refinement,
                                    tube_radius, progress)

    # -- guide-compatible names ---------------------------------------------------------------
    def get_scaffold_as_vtk(self, dataset_id: int,
                            output_location: str | os.PathLike[str] | None = None) -> Path:
        """The dataset's scaffold (from its settings JSON) as ``scaffold_root.vtk`` in
        ``output_location`` (default: the current folder)."""
        return self._scaffold(dataset_id, "vtk", output_location, "scaffold_root.vtk")

    def get_scaffold_as_stl(self, dataset_id: int,
                            output_location: str | os.PathLike[str] | None = None) -> Path:
        """The dataset's scaffold as ``scaffold_zinc_graphics.stl`` in ``output_location``."""
        return self._scaffold(dataset_id, "stl", output_location, "scaffold_zinc_graphics.stl")

    def get_scaffold_vtk(self, dataset_id: int,
                         output_file: str | os.PathLike[str] = "scaffold.vtk") -> Path:
        """The dataset's scaffold as the VTK file ``output_file`` (the tutorial's name)."""
        target = Path(output_file).expanduser()
        return self._scaffold(dataset_id, "vtk", target.parent, target.name)

    def get_mbf_vtk(self, dataset_id: int, dataset_file: str,
                    output_file: str | os.PathLike[str] | None = None) -> Path:
        """The MBF XML segmentation ``dataset_file`` of the dataset as the VTK file
        ``output_file`` (default: its name with ``.vtk``, in the current folder); the contours
        stay polyline segments."""
        if not isinstance(dataset_file, str) or not dataset_file:
            raise ArgumentError(f"dataset_file must be a file name, got {dataset_file!r}")
        target = Path(output_file if output_file is not None
                      else Path(dataset_file).with_suffix(".vtk").name).expanduser()
        return self._from_dataset(dataset_id, None, dataset_file, "vtk", target, None)

    def _scaffold(self, dataset_id: int, fmt: str, folder: Any, name: str) -> Path:
        target = Path(folder if folder not in (None, "") else ".").expanduser() / name
        return self._from_dataset(dataset_id, None, None, fmt, target, "scaffold")

    def _from_dataset(self, dataset_id: int, version: int | None, file: str | None, fmt: str,
                      target: Path, kind: str | None) -> Path:
        """Export one dataset file (named ``file``, or the first of ``kind``) to ``target``."""
        from sparc.client.services.zinc import _engine

        _engine.check_installed()  # before any download
        dataset_id = _dataset_number(dataset_id)
        version, names = self._dataset_files(dataset_id, version)
        if file is not None:
            chosen = _match(file, names, dataset_id, version)
        else:
            found = [n for n in names if _kind_of(n) == kind]
            if not found:
                raise NoExportableFileError(
                    f"dataset {dataset_id} version {version} has no scaffold settings file "
                    f"(*settings.json) among its {len(names)} files")
            chosen = found[0]
        folder = _folder(target.parent)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="sparc-zinc-") as tmp:
            local = self._download(dataset_id, version, [chosen], Path(tmp), None)[0]
            return self._convert(local, [fmt], folder, Path(target.name).stem, DEFAULT_REFINEMENT,
                                 None, exact={fmt: target.name}, progress=None)[0]

    # -- analyse ------------------------------------------------------------------------------
    def analyse(self, input_data_file_name: str | os.PathLike[str], organs: str | Sequence[str],
                species: str | None = None) -> str:
        """Which of an MBF XML file's groups the scaffoldmaker annotation terms of ``organs``
        know, as a message::

            zinc.analyse("seg.xml", ["stomach", "esophagus"], "Mice")
            # 'The data file seg.xml is suited for mapping to the given organ. However, ...'

        Unknown organ names raise :class:`UnknownOrganError`; a missing file, a name without the
        ``.xml`` suffix or malformed XML raises :class:`NotExportableError` (a ``ValueError``);
        well-formed XML that is not MBF returns "... doesn't have any groups, therefore this
        data file is not suitable for mapping." (as upstream). ``species`` is accepted for
        compatibility; the terms do not depend on it. Nothing is written to disk.
        """
        from sparc.client.services.zinc import _analyse, _engine

        _engine.check_installed()
        return _analyse.analyse(input_data_file_name, organs, species)

    # -- internals ----------------------------------------------------------------------------
    def _dataset_files(self, dataset_id: int, version: int | None) -> tuple[int, list[str]]:
        """The version number and every file path of a dataset version (from its manifest)."""
        if version is None:
            version = int(self.pennsieve.get_dataset(dataset_id)["version"])
        metadata = self.pennsieve.get_metadata(dataset_id, version)
        names = [f["path"] for f in metadata.get("files", []) if isinstance(f, dict)
                 and f.get("path")]
        if not names:  # no manifest listing: walk the tree
            names = [n["path"] for n in self.pennsieve.walk(dataset_id, version)]
        return version, names

    def _download(self, dataset_id: int, version: int, paths: list[str], folder: Path,
                  progress: bool | None) -> list[Path]:
        self.pennsieve.download(dataset_id, paths, folder, version=version, progress=progress)
        return [folder / p for p in paths]

    def _export_dataset(self, dataset_id: int, formats: list[str], folder: Path,
                        version: int | None, file: str | None, refinement: int,
                        tube_radius: float | None, progress: bool | None) -> list[Path]:
        dataset_id = _dataset_number(dataset_id)
        version, names = self._dataset_files(dataset_id, version)
        if file is not None:
            chosen = [_match(file, names, dataset_id, version)]
        else:
            chosen = [n for n in names if _kind_of(n)]
            if not chosen:
                raise NoExportableFileError(
                    f"dataset {dataset_id} version {version} has no exportable file among its "
                    f"{len(names)} files; looked for {ACCEPTED_INPUTS} "
                    f"(found e.g. {', '.join(repr(n) for n in names[:5])})")
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        skipped: dict[str, str] = {}
        stems: set[str] = set()
        with tempfile.TemporaryDirectory(prefix="sparc-zinc-") as tmp:
            local = self._download(dataset_id, version, chosen, Path(tmp), progress)
            for path, name in zip(local, chosen, strict=True):
                stem = _stem(path)
                while stem in stems:
                    stem += "_"
                stems.add(stem)
                try:
                    written += self._convert(path, formats, folder, stem, refinement, tube_radius,
                                             progress=progress)
                except (NotExportableError, EmptyExportError) as exc:
                    if file is not None:
                        raise
                    log.warning("dataset %s: skipped %s: %s", dataset_id, name, exc)
                    skipped[name] = str(exc)
        if not written:
            reasons = "; ".join(f"{n}: {r}" for n, r in list(skipped.items())[:3])
            raise NoExportableFileError(f"dataset {dataset_id} version {version}: none of its "
                                        f"candidate files could be exported ({reasons})")
        return written

    def _convert(self, path: Path, formats: list[str], folder: Path, stem: str, refinement: int,
                 tube_radius: float | None, exact: dict[str, str] | None = None,
                 progress: bool | None = False) -> list[Path]:
        """Load ``path`` once (fresh Zinc context) and write each format into ``folder``.

        With ``progress`` (None: when stderr is a terminal or in Jupyter) a bar counts the
        steps: loading/tessellating, then one per format.
        """
        from sparc.client.progress import step_bar
        from sparc.client.services.zinc import _engine, _writers

        _engine.check_installed()
        written = []
        with step_bar(1 + len(formats), f"zinc {path.name}: loading", progress) as bar:
            started = time.perf_counter()
            geometry = _engine.load_geometry(path, refinement=refinement,
                                             webgl="webgl" in formats)
            log.info("%s: loaded as %s in %.2f s", path.name, geometry.source_kind,
                     time.perf_counter() - started)
            bar.update(1)
            for fmt in formats:
                bar.set_description(f"zinc {path.name}: {fmt}")
                if fmt == "webgl":
                    files = _writers.webgl_files(geometry, stem)
                    if len(files) < 2:
                        raise EmptyExportError(f"{path.name!r}: Zinc produced no WebGL graphics")
                    # parts first, the metadata (which names them) last: a reader never sees
                    # metadata pointing at missing or old part files
                    published = [_publish(folder, name, lambda p, t=text: p.write_text(
                        t, encoding="utf-8")) for name, text in files[1:] + files[:1]]
                    written += published[-1:] + published[:-1]
                    _remove_stale_parts(folder, stem, {p.name for p in published})
                else:
                    name = (exact or {}).get(fmt) or f"{stem}{_writers.SUFFIXES[fmt]}"
                    writer = _writers.WRITERS[fmt]
                    written.append(_publish(folder, name, lambda p, w=writer: w(
                        geometry, p, tube_radius)))
                bar.update(1)
        return written


_THREEJS_START = re.compile(rb'\A\s*\{\s*"metadata"\s*:\s*\{\s*"formatVersion"')


def _remove_stale_parts(folder: Path, stem: str, keep: set[str]) -> None:
    """Delete ``<stem>_<n>.json`` ZincJS part files an earlier, larger export left behind."""
    pattern = re.compile(re.escape(stem) + r"_\d+\.json")
    for path in folder.iterdir():
        if path.name in keep or not pattern.fullmatch(path.name) or not path.is_file():
            continue
        with path.open("rb") as f:
            if _THREEJS_START.match(f.read(256)):
                log.info("removing %s, a part file of an earlier WebGL export", path.name)
                path.unlink(missing_ok=True)


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def _kind_of(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    if SETTINGS_NAME.search(base):
        return "scaffold"
    if ZINC_NAME.search(base):
        return "zinc"
    if MBF_NAME.search(base):
        return "mbf"
    return None


def _match(file: str, names: list[str], dataset_id: int, version: int) -> str:
    """The dataset path ``file`` names: an exact path, else a unique file name."""
    if not isinstance(file, str) or not file.strip("/"):
        raise ArgumentError(f"file must be a path or name within the dataset, got {file!r}")
    wanted = file.strip("/")
    if wanted in names:
        return wanted
    hits = [n for n in names if n.endswith("/" + wanted) or n == wanted]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ArgumentError(f"{file!r} matches {len(hits)} files of dataset {dataset_id} "
                            f"version {version}: {', '.join(hits[:5])}; pass the full path")
    candidates = [n for n in names if _kind_of(n)]
    raise NoExportableFileError(
        f"dataset {dataset_id} version {version} has no file {file!r}; exportable files: "
        f"{', '.join(candidates[:10]) or 'none'}")


def _dataset_number(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"dataset_id must be a dataset number such as 292, got {value!r}")
    return value


# Keep UnknownOrganError importable from here too (CLI and tests).
__all__ += ["UnknownOrganError"]
