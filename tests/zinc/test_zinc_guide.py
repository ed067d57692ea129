"""The guide's Zinc tutorial (docs/tutorial-zinc.ipynb of nih-sparc/sparc.client), as written,
against the sandbox (reached through the environment only), plus the reference names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from zinc_readback import (
    DATA,
    bounds,
    counts,
    mbf_contour_bounds,
    meshio_read,
    read_legacy_vtk,
)


def test_tutorial_as_written(sandbox_env: Path) -> None:
    # Import the required modules
    from sparc.client.zinchelper import ZincHelper

    zinc = ZincHelper()

    # Export scaffold as VTK file
    dataset_id = 292
    output_file = "scaffold.vtk"
    zinc.get_scaffold_vtk(dataset_id, output_file)
    assert os.path.exists(output_file)

    # Export MBF segmentation file as VTK file
    dataset_id = 107
    dataset_file = "10991_20180817_143553.xml"
    output_file = "mbf_vtk.vtk"
    zinc.get_mbf_vtk(dataset_id, dataset_file, output_file)
    assert os.path.exists(output_file)

    # Analyse MBF XML file (the tutorial's path is ../tests/resources/...: copy it there)
    resources = sandbox_env / "tests" / "resources"
    resources.mkdir(parents=True)
    shutil.copy(DATA / "3Dscaffold-CGRP-Mice-Dorsal-2.xml", resources)
    (sandbox_env / "docs").mkdir()
    os.chdir(sandbox_env / "docs")
    input_file_name = "../tests/resources/3Dscaffold-CGRP-Mice-Dorsal-2.xml"
    species = "Mice"
    organ = "stomach"
    single = zinc.analyse(input_file_name, organ, species)
    organ = ["stomach", "esophagus"]
    both = zinc.analyse(input_file_name, organ, species)
    zinc.close()

    suited = f"The data file {input_file_name} is suited for mapping to the given organ."
    assert single.startswith(suited)
    assert "However, the mapping tool does not have the following groups defined by default; " \
           "circular-longitudinal muscle interface of esophagus along the cut margin, " \
           "http://uri.interlex.org/base/ilx_0793091." in single
    assert both == suited  # the esophagus terms cover the rest
    assert sorted(os.listdir(resources)) == ["3Dscaffold-CGRP-Mice-Dorsal-2.xml"]  # no .exf left

    # the files are real meshes: the scaffold's surface, the segmentation's polylines
    scaffold = meshio_read(sandbox_env / "scaffold.vtk")
    assert counts(scaffold)[1]["triangle"] > 10_000
    mbf = read_legacy_vtk(sandbox_env / "mbf_vtk.vtk")
    assert (len(mbf["points"]), mbf["cell_kind"]) == (1743, "LINES")
    assert sum(len(chain) - 1 for chain in mbf["cells"]) == 1735
    assert np.allclose(bounds(mbf["points"]),
                       mbf_contour_bounds(DATA / "3Dscaffold-CGRP-Mice-Dorsal-2.xml"))
    assert sorted(os.listdir(sandbox_env)) == ["docs", "mbf_vtk.vtk", "scaffold.vtk", "tests"]


def test_client_zinc_is_the_same_engine(sandbox_env: Path) -> None:
    from sparc.client import SparcClient
    from sparc.client.services.zinc import ZincService
    from sparc.client.zinchelper import ZincHelper

    with SparcClient(connect=False) as client, ZincHelper() as helper:
        assert isinstance(client.zinc, ZincService) and isinstance(helper, ZincService)
        assert client.zinc.pennsieve.host == helper.pennsieve.host == os.environ[
            "PENNSIEVE_API_HOST"].rstrip("/")
        assert client.zinc.http is client.pennsieve.http  # one connection pool
        assert "zinc" in client.module_names
        client.connect()  # connecting every service imports nothing heavy and needs nothing


def test_get_mbf_vtk_default_output_name(sandbox_env: Path) -> None:
    from sparc.client.zinchelper import ZincHelper

    with ZincHelper() as zinc:
        path = zinc.get_mbf_vtk(107, "10991_20180817_143553.xml")
    assert path == sandbox_env / "10991_20180817_143553.vtk"
    assert sorted(os.listdir(sandbox_env)) == ["10991_20180817_143553.vtk"]


@pytest.mark.slow
def test_reference_names_scaffold_as_vtk_and_stl(sandbox_env: Path, tmp_path: Path) -> None:
    from sparc.client.zinchelper import ZincHelper

    with ZincHelper() as zinc:
        vtk = zinc.get_scaffold_as_vtk(292, tmp_path)
        stl = zinc.get_scaffold_as_stl(292, str(tmp_path))
        default = zinc.get_scaffold_as_vtk(292)
    assert vtk == tmp_path / "scaffold_root.vtk" and stl == tmp_path / "scaffold_zinc_graphics.stl"
    assert default == sandbox_env / "scaffold_root.vtk"
    assert counts(meshio_read(stl))[1]["triangle"] == counts(meshio_read(vtk))[1]["triangle"]


def test_tutorial_calls_show_progress_when_auto(sandbox_env: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The tutorial-style helpers pass progress=None (auto: a bar in Jupyter or a terminal) to
    the export, as to the download, instead of turning the bar off."""
    import sparc.client.progress
    from sparc.client.zinchelper import ZincHelper

    seen: list[bool | None] = []

    def record(progress: bool | None) -> bool:
        seen.append(progress)
        return False

    monkeypatch.setattr(sparc.client.progress, "bars_enabled", record)
    with ZincHelper() as zinc:
        zinc.get_mbf_vtk(107, "10991_20180817_143553.xml", "mbf.vtk")
    assert seen and set(seen) == {None}, seen
