"""Embargoed Discover data: signed out it is 401; signed in, the sandbox user reads the dataset
it was granted (275), with ``embargoAccess`` filled; a forged token is 401 again."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from sparc.client import SparcClient
from sparc.client.errors import AuthenticationError
from sparc.sandbox.process import SandboxProcess

GRANTED = 275  # the sandbox user's granted embargoed dataset (sandbox/workspace/embargo.py)


def test_signed_out_embargoed_files_are_401_and_access_is_not_shown(client: SparcClient) -> None:
    assert client.pennsieve.get_dataset(GRANTED)["embargoAccess"] is None
    with pytest.raises(AuthenticationError) as info:
        client.pennsieve.browse(GRANTED)
    assert info.value.status == 401


def test_signed_in_user_reads_the_granted_embargoed_dataset(client: SparcClient,
                                                            tmp_path: Path) -> None:
    client.pennsieve.sign_in()
    dto = client.pennsieve.get_dataset(GRANTED)
    assert dto["embargo"] is True and dto["embargoAccess"] == "Granted"
    version = dto["version"]
    assert client.pennsieve.get(f"/discover/datasets/{GRANTED}/versions/{version}")[
        "embargoAccess"] == "Granted"
    files = list(client.pennsieve.walk(GRANTED, path="files/primary/sub-1"))
    assert files
    result = client.pennsieve.download(GRANTED, files[0]["path"], tmp_path / "out",
                                       progress=False)
    assert [f.status for f in result.files] == ["downloaded"]
    assert result.files[0].local_path.stat().st_size == files[0]["size"]


def test_a_forged_token_is_refused_like_no_token(sandbox: SandboxProcess) -> None:
    url = f"{sandbox.url}/discover/datasets/{GRANTED}/versions/1/files/browse"
    answer = httpx.get(url, headers={"Authorization": "Bearer not.a.token"})
    assert answer.status_code == 401
    assert answer.json() == "Dataset is under embargo"


def test_signed_in_user_without_a_grant_gets_403(client: SparcClient) -> None:
    from sparc.client.errors import PermissionDeniedError

    refused = 281  # embargoed, not granted to the sandbox user
    client.pennsieve.sign_in()
    dto = client.pennsieve.get_dataset(refused)
    assert dto["embargo"] is True and dto["embargoAccess"] is None
    with pytest.raises(PermissionDeniedError) as info:
        client.pennsieve.browse(refused)
    assert info.value.status == 403


def test_a_page_read_signed_in_stays_refused_signed_out(client: SparcClient,
                                                        sandbox: SandboxProcess) -> None:
    """The sandbox builds each browse page once (published files never change): who may read it
    is still asked on every request."""
    client.pennsieve.sign_in()
    version = client.pennsieve.get_dataset(GRANTED)["version"]
    url = f"{sandbox.url}/discover/datasets/{GRANTED}/versions/{version}/files/browse"
    seen = client.pennsieve.get(url, params={"path": "files"})
    assert seen["files"]
    again = httpx.get(url, params={"path": "files"})
    assert again.status_code == 401 and again.json() == "Dataset is under embargo"


def test_browse_pages_are_the_same_bytes_each_time(sandbox: SandboxProcess) -> None:
    url = f"{sandbox.url}/discover/datasets/90/versions/1/files/browse"
    first, second = (httpx.get(url, params={"path": "metadata/records", "limit": 3})
                     for _ in range(2))
    assert first.content == second.content and first.headers["content-type"] == "application/json"
    assert first.content == json.dumps(first.json(), ensure_ascii=False,
                                       separators=(",", ":")).encode()
    assert len(first.json()["files"]) == 3 and first.json()["totalCount"] > 3
