"""Helpers of the upload suite: pointing the environment at a sandbox, unique names, file trees
and the sandbox's S3 read back with the storage owner's keys (the sandbox user's API key)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from sparc.client import SparcClient
from sparc.sandbox.process import SandboxProcess


def use_sandbox(sb: SandboxProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the environment at ``sb`` (its export lines) and keep upload records in tmp."""
    for name, value in sb.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SPARC_UPLOAD_STATE_DIR", str(tmp_path / "upload-records"))
    monkeypatch.chdir(tmp_path)


def unique(prefix: str = "ds") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def write_tree(root: Path, count: int, size: int = 64) -> dict[str, bytes]:
    """``count`` small files in nested folders under ``root``: {relative path: bytes}."""
    files: dict[str, bytes] = {}
    for i in range(count):
        rel = f"d{i % 7}/e{i % 3}/f{i:04d}.txt"
        data = (f"{i}:".encode() + hashlib.sha256(str(i).encode()).digest()) * (size // 34 + 1)
        data = data[:size]
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[rel] = data
    return files


def owner_s3(sb: SandboxProcess) -> Any:
    """boto3 S3 on the sandbox's storage with the storage owner's keys (the API key/secret)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=sb.env["PENNSIEVE_S3_ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=sb.env["PENNSIEVE_API_KEY"],
                        aws_secret_access_key=sb.env["PENNSIEVE_API_SECRET"],
                        config=Config(s3={"addressing_style": "path"}))


def read_back(sb: SandboxProcess, client: SparcClient, result: Any) -> dict[str, bytes]:
    """The stored bytes of every uploaded file of ``result``: {local path: bytes}."""
    p = client.pennsieve
    creds = p.private_request("POST", f"{p.api2_host}/upload/manifest/storage-credentials",
                              params={"dataset_id": result.dataset_id},
                              json={"manifestNodeId": result.manifest_id})
    s3 = owner_s3(sb)
    out = {}
    for f in result.files:
        if f.status == "uploaded":
            body = s3.get_object(Bucket=creds["bucket"], Key=f"{creds['keyPrefix']}/{f.upload_id}")
            out[str(f.source)] = body["Body"].read()
    return out
