"""Sign in, create a dataset and upload a small folder to a local SPARC sandbox, without the
Pennsieve Agent: first with :meth:`upload`, then with the Agent-era calls of the tutorial
(``p.manifest.create(...)``, ``p.manifest.upload()``).

``python examples/demo_upload.py`` starts a sandbox and points the client at it with the
environment variables ``sparc sandbox serve`` prints (``PENNSIEVE_API_HOST``,
``PENNSIEVE_API_KEY``, ...); ``examples/guide_demo.py`` calls :func:`run` with them already set.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any


def _folder(root: Path) -> Path:
    """A small folder to upload: a README, a CSV and two files in a subfolder."""
    folder = root / "pilot-data"
    (folder / "primary" / "sub-01").mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("# Pilot data\nUploaded by examples/demo_upload.py\n")
    (folder / "samples.csv").write_text("sample,weight\ns1,1.5\ns2,2.0\n")
    for i in range(2):
        (folder / "primary" / "sub-01" / f"trace-{i}.txt").write_text(f"{i}\n" * 1000)
    return folder


def run(client: Any) -> dict[str, Any]:
    """Sign in with ``client``, create a dataset, upload a small folder; returns what happened
    (``dataset``, ``result``, ``packages``). Raises when anything did not arrive."""
    pennsieve = client.pennsieve
    p = pennsieve.connect()  # signs in; prints "Please set the dataset with use_dataset([name])"
    me = p.user.whoami()
    print(f"signed in as {me.name} ({me.id}) in {me.organization_id}")
    name = f"Demo upload {uuid.uuid4().hex[:6]}"
    dataset = pennsieve.create_dataset(name, description="made by examples/demo_upload.py",
                                       tags=["demo"])
    print(f"created {name!r}: {dataset['content']['id']}")
    with tempfile.TemporaryDirectory(prefix="sparc-upload-demo-") as scratch:
        folder = _folder(Path(scratch))
        result = pennsieve.upload(name, [folder], target_path="raw", progress=False)
        print(result.summary())
        if not result.ok:
            raise RuntimeError(f"upload failed: {result.failed}")
        # the tutorial's Agent-era calls, on the same engine
        p.use_dataset(name)
        print(p.manifest.create(str(folder / "README.md")))
        reply = p.manifest.upload(progress=False)
        print(f'status: "{reply.status}" ({reply.result.summary()})')
    packages = pennsieve.list_packages(name)
    for package in packages:
        content = package["content"]
        print(f"  {content['packageType']:<11} {content['name']}")
    files = [pk for pk in packages if pk["content"]["packageType"] != "Collection"]
    if len(files) != 5:
        raise RuntimeError(f"expected 5 files in {name!r}, found {len(files)}")
    return {"dataset": dataset, "result": result, "packages": packages}


def main() -> int:
    from sparc.client import SparcClient
    from sparc.sandbox.process import SandboxProcess

    with tempfile.TemporaryDirectory(prefix="sparc-upload-demo-") as scratch, \
            SandboxProcess(Path(scratch) / "sandbox", "--time-scale", "0") as sandbox:
        os.environ.update(sandbox.env)
        os.environ["SPARC_UPLOAD_STATE_DIR"] = str(Path(scratch) / "records")
        with SparcClient(connect=False) as client:
            run(client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
