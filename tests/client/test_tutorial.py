"""The guide's tutorial notebook (nih-sparc/sparc.client ``docs/tutorial.ipynb``), replayed.

Every Pennsieve cell of the notebook runs here as written (cell numbers in the comments), in
order, against the sandbox; the client reaches the sandbox only through ``PENNSIEVE_API_HOST``.
Left out: the ``!pip``/``!dir``/``!pennsieve agent`` shell lines and the Agent-based upload
cells (51-55), which the upload issue covers.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import pytest

from sparc.sandbox.process import SandboxProcess

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "specs" / "samples"  # see SOURCES.md


@pytest.fixture
def notebook_env(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The notebook's world: sandbox hosts in the environment, a fresh working folder."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    workdir = tmp_path / "docs"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


def test_tutorial_notebook_pennsieve_cells(notebook_env: Path) -> None:
    # cell 12 (the notebook's ../config/config.ini is not there: defaults, with a visible warning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from sparc.client import SparcClient
        client = SparcClient(connect=False, config_file='../config/config.ini')
    assert any("config.ini" in str(w.message) for w in caught)

    # cell 18
    client.add_module(config={'pennsieve_profile_name' : 'ci'},
                      paths = 'sparc.client.services.pennsieve',
                      connect=False)
    assert client.pennsieve.get_profile() == "ci"

    # cell 25
    response=client.pennsieve.list_datasets(query='cancer', limit=2)
    assert {d["id"] for d in response["datasets"]} == {33, 93}

    # cell 27
    response=client.pennsieve.list_datasets(organization='Sparc', embargo=True, order_by='date', order_direction='asc')
    real = json.loads((SAMPLES / "discover-dataset_embargoed_275.json").read_text())
    assert response['datasets'][0]["id"] == real["id"]
    assert response['datasets'][0]["name"] == real["name"]

    # cell 30
    response=client.pennsieve.list_records(model='researcher', organization='SPARC')
    assert response["records"] and all(r["model"] == "researcher" for r in response["records"])

    # cell 33
    response=client.pennsieve.list_files(dataset_id=90, query='manifest', file_type='json')
    assert [f["name"] for f in response] and all(f["datasetId"] == 90 for f in response)

    # cell 35
    response=client.pennsieve.list_files(dataset_id=90, query='manifest')
    names = list(map(lambda x: "/".join(x["uri"].split("/")[5:]), response))
    assert "manifest.json" in names

    # cell 39: several files, saved under exactly the name given (a ZIP, whatever the suffix)
    response=client.pennsieve.list_files(dataset_id=90, query='manifest', file_type='json')
    assert len(response) > 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        saved = client.pennsieve.download_file(file_list=response, output_name='myfile.gz')
    assert Path(saved).resolve() == (notebook_env / "myfile.gz").resolve()
    assert zipfile.is_zipfile(notebook_env / "myfile.gz")
    assert not (notebook_env / "myfile.gz.zip").exists()
    assert any("zip" in str(w.message).lower() for w in caught)  # the suffix does not say ZIP
    with zipfile.ZipFile(notebook_env / "myfile.gz") as archive:
        assert archive.testzip() is None and len(archive.namelist()) == len(response)

    # cells 41-42
    assert response[1]["name"] == "manifest.json"
    response=client.pennsieve.list_files(dataset_id=90, query='manifest', file_type='json')
    saved = client.pennsieve.download_file(file_list=response[1]) # Expected output_name: 'manifest.json'
    assert Path(saved).name == "manifest.json" and (notebook_env / "manifest.json").is_file()

    # cell 45
    page = client.pennsieve.get('https://api.pennsieve.io/discover/datasets/90/versions/1/files/browse', params={'limit':2})
    real = json.loads((SAMPLES / "discover-browse_dataset-90_v1_limit-2.json").read_text())
    assert [f["path"] for f in page["files"]] == [f["path"] for f in real["files"]]

    # cell 46
    manifest = client.pennsieve.post('/discover/datasets/90/versions/1/files/download-manifest', json={"paths":["/metadata/records"]})
    real = json.loads((SAMPLES / "discover-download-manifest_dataset-90_v1_metadata-records.json").read_text())
    assert manifest["header"]["count"] == real["header"]["count"]
    assert sorted(e["fileName"] for e in manifest["data"]) == sorted(e["fileName"] for e in real["data"])
    assert all("sha256" not in e for e in manifest["data"])  # as production: no sha256 at all
