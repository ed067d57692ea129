"""``sparc zinc export`` / ``sparc zinc analyse`` run as a process against the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from zinc_readback import DATA, bounds, counts, meshio_read, read_legacy_vtk, trimesh_scene

from sparc.sandbox.process import SandboxProcess

SPARC = [sys.executable, "-m", "sparc.cli"]


def sparc(cwd: Path, sandbox: SandboxProcess | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(sandbox.env if sandbox else {})}
    return subprocess.run([*SPARC, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=240)


def test_export_dataset_file_every_format_agrees(sandbox: SandboxProcess, tmp_path: Path) -> None:
    done = sparc(tmp_path, sandbox, "zinc", "export", "107", "-f", "vtk", "-f", "stl", "-f", "glb",
                 "-o", "out", "--file", "10991_20180817_143553.xml", "-q")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [Path(line).name for line in lines] == [
        "10991_20180817_143553.vtk", "10991_20180817_143553.stl", "10991_20180817_143553.glb"]
    assert all(Path(line).parent == tmp_path / "out" for line in lines)
    lines_box = bounds(read_legacy_vtk(Path(lines[0]))["points"])
    tube_box = bounds(meshio_read(Path(lines[1])).points)
    assert np.allclose(tube_box, lines_box, atol=3.5)  # no axis swap: the tubes enclose the lines
    assert np.allclose(trimesh_scene(Path(lines[2])).bounds, tube_box, atol=1e-3)
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_export_local_file(tmp_path: Path) -> None:
    done = sparc(tmp_path, None, "zinc", "export", str(DATA / "cube.exf"), "-f", "ply")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(tmp_path / "cube.ply")]
    assert counts(meshio_read(tmp_path / "cube.ply")) == (218, {"triangle": 432})


def test_export_errors_are_one_line(sandbox: SandboxProcess, tmp_path: Path) -> None:
    done = sparc(tmp_path, sandbox, "zinc", "export", "120", "-o", "out")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "NoExportableFileError" in done.stderr
    bad = tmp_path / "notes.txt"
    bad.write_text("notes")
    done = sparc(tmp_path, None, "zinc", "export", str(bad))
    assert done.returncode == 1 and "NotExportableError" in done.stderr
    done = sparc(tmp_path, None, "zinc", "export", str(bad), "-f", "fbx")
    assert done.returncode == 2 and "'fbx' is not one of" in done.stderr


def test_analyse(tmp_path: Path) -> None:
    xml = str(DATA / "3Dscaffold-CGRP-Mice-Dorsal-2.xml")
    done = sparc(tmp_path, None, "zinc", "analyse", xml, "--organ", "stomach", "--organ",
                 "esophagus", "--species", "Mice")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"The data file {xml} is suited for mapping to the given organ.\n"
    done = sparc(tmp_path, None, "zinc", "analyse", xml, "--organ", "brain")
    assert done.returncode == 1
    assert "UnknownOrganError: The brain organ is not handled by the mapping tool" in done.stderr
