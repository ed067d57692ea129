"""Helpers for the workspace tests: sign in to a sandbox over raw HTTP, drive the upload service,
and S3 clients (boto3) for the storage credentials it hands out.

Example::

    ws = Signed.sign_in(sandbox.url)
    ds = ws.create_dataset("My data")
    manifest, creds = ws.start_upload(ds, [("a/b", "x.txt", upload_id)])
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

KEY, SECRET = "sandbox-key", "sandbox-secret"
TARGET = "AWSCognitoIdentityProviderService.InitiateAuth"
AMZ_JSON = "application/x-amz-json-1.1"


def initiate_auth(base: str, username: str = KEY, password: str = SECRET,
                  client_id: str | None = None) -> httpx.Response:
    """Cognito ``InitiateAuth`` (USER_PASSWORD_AUTH) at ``<base>/cognito``, as the clients send it."""
    if client_id is None:
        client_id = httpx.get(base + "/authentication/cognito-config").json()["tokenPool"]["appClientId"]
    body = {"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client_id,
            "AuthParameters": {"USERNAME": username, "PASSWORD": password}}
    return httpx.post(base + "/cognito", content=json.dumps(body),
                      headers={"X-Amz-Target": TARGET, "Content-Type": AMZ_JSON})


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) payload of a JWT."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def b64sha256(data: bytes) -> str:
    """S3's ChecksumSHA256 of a single-part object."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def s3_client(base: str, access_key: str, secret: str, token: str | None = None) -> Any:
    """A boto3 S3 client for the sandbox's storage (path-style, as the clients use it)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=base + "/s3", region_name="us-east-1", aws_access_key_id=access_key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      signature_version="s3v4"))


@dataclass
class Signed:
    """A signed-in session on one sandbox: ``Authorization`` and ``X-ORGANIZATION-ID`` headers."""

    base: str
    result: dict[str, Any]

    @classmethod
    def sign_in(cls, base: str) -> Signed:
        r = initiate_auth(base)
        assert r.status_code == 200, r.text
        return cls(base, r.json()["AuthenticationResult"])

    @property
    def headers(self) -> dict[str, str]:
        org = jwt_claims(self.result["IdToken"])["custom:organization_node_id"]
        return {"Authorization": f"Bearer {self.result['AccessToken']}", "X-ORGANIZATION-ID": org}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.base + path, headers=self.headers, timeout=60, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return httpx.post(self.base + path, headers=self.headers, json=body, timeout=60, **kw)

    # ---- datasets ---------------------------------------------------------------------------------
    def create_dataset(self, name: str | None = None) -> str:
        """A new dataset's node id."""
        r = self.post("/datasets", {"name": name or f"ds-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 201, r.text
        return str(r.json()["content"]["id"])

    def packages(self, dataset: str, page_size: int = 100) -> list[dict[str, Any]]:
        """Every package of a dataset, following the cursor."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"pageSize": page_size}
            if cursor:
                params["cursor"] = cursor
            page = self.get(f"/datasets/{dataset}/packages", params=params).json()
            out += page["packages"]
            cursor = page["cursor"]
            if cursor is None:
                return out

    # ---- upload service ---------------------------------------------------------------------------
    def manifest(self, dataset: str) -> str:
        r = self.post("/upload/manifest", {"dataset_id": dataset}, params={"dataset_id": dataset})
        assert r.status_code == 200, r.text
        return str(r.json()["manifest_node_id"])

    def register(self, dataset: str, manifest: str, files: list[tuple[str, str, str]]) -> dict[str, Any]:
        """Register ``(target_path, target_name, upload_id)`` files; the reply."""
        body = {"id": manifest, "dataset_id": dataset, "status": 0, "files": [
            {"upload_id": u, "s3_key": f"{manifest}/{u}", "target_path": p, "target_name": n, "status": 0,
             "merge_package_id": "", "file_type": ""} for p, n, u in files]}
        r = self.post("/upload/manifest", body, params={"dataset_id": dataset})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def credentials(self, dataset: str, manifest: str) -> dict[str, Any]:
        r = self.post("/upload/manifest/storage-credentials", {"manifestNodeId": manifest},
                      params={"dataset_id": dataset})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def s3(self, creds: dict[str, Any]) -> Any:
        return s3_client(self.base, creds["accessKeyId"], creds["secretAccessKey"], creds["sessionToken"])

    def finalize(self, dataset: str, manifest: str, files: list[dict[str, Any]],
                 on_conflict: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"manifestNodeId": manifest, "files": files}
        if on_conflict:
            body["onConflict"] = on_conflict
        return self.post("/upload/manifest/files/finalize", body, params={"dataset_id": dataset})

    def upload(self, dataset: str, files: dict[str, bytes], on_conflict: str | None = None
               ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """Upload ``{"a/b/x.txt": data}`` with PutObject; ``(manifest, {path: upload_id}, finalize reply)``."""
        manifest = self.manifest(dataset)
        ids = {path: str(uuid.uuid4()) for path in files}
        self.register(dataset, manifest, [(p.rpartition("/")[0], p.rpartition("/")[2], u) for p, u in ids.items()])
        creds = self.credentials(dataset, manifest)
        s3 = self.s3(creds)
        for path, data in files.items():
            s3.put_object(Bucket=creds["bucket"], Key=f"{creds['keyPrefix']}/{ids[path]}", Body=data,
                          ChecksumAlgorithm="SHA256")
        reply = self.finalize(dataset, manifest, [
            {"uploadId": ids[p], "size": len(d), "sha256": b64sha256(d)} for p, d in files.items()], on_conflict)
        assert reply.status_code == 200, reply.text
        return manifest, ids, reply.json()


def owner_s3(base: str) -> Any:
    """An S3 client with the storage owner's keys (the sandbox user's API key and secret)."""
    return s3_client(base, KEY, SECRET)
