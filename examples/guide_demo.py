"""The reference guide's Pennsieve steps, run verbatim against a local SPARC sandbox.

``make demo`` runs this: it starts ``sparc sandbox serve --port 0``, points the client at it
with environment variables only (``PENNSIEVE_API_HOST``), runs the guide's calls in a scratch
folder, prints what they return, and stops the sandbox.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from sparc.sandbox.process import SandboxProcess


def show(title: str, value: Any, limit: int = 1800) -> None:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    if len(text) > limit:
        text = text[:limit] + f"\n... ({len(text) - limit} more characters)"
    print(f"\n### {title}\n{text}", flush=True)


def zinc_demo(client: Any) -> list[str]:
    """Export the sandbox's scaffold (dataset 292) and MBF segmentation (107), if the zinc extra
    is installed; the written paths."""
    try:
        import cmlibs.zinc  # noqa: F401
    except ImportError:
        return ["(skipped: pip install 'sparc.client[zinc]' for the Zinc exports)"]
    written = [*client.zinc.export(292, format=["vtk", "stl", "glb"], output="zinc"),
               *client.zinc.export(107, format="vtk", output="zinc")]
    return [str(Path(p).relative_to(Path.cwd())) for p in written]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sparc-demo-") as scratch, \
            SandboxProcess(Path(scratch) / "sandbox") as sandbox:
        print(f"SPARC sandbox running at {sandbox.url}")
        for name, value in sandbox.env.items():
            print(f"export {name}={value}")
            os.environ[name] = value
        os.chdir(scratch)  # the guide downloads into the current folder

        # --- the guide, verbatim -------------------------------------------------------------
        from sparc.client import SparcClient
        client = SparcClient(connect=False, config_file='config.ini')

        response = client.pennsieve.list_datasets(query='cancer', limit=2)
        show("client.pennsieve.list_datasets(query='cancer', limit=2)", response)

        response = client.pennsieve.list_records(model='researcher', organization='SPARC')
        show("client.pennsieve.list_records(model='researcher', organization='SPARC')", response)

        response = client.pennsieve.list_files(dataset_id=90, query='manifest', file_type='json')
        show("client.pennsieve.list_files(dataset_id=90, query='manifest', file_type='json')",
             response)

        response = client.pennsieve.list_files(dataset_id=90, query='manifest', file_type='json')
        saved = client.pennsieve.download_file(file_list=response[1])
        show("client.pennsieve.download_file(file_list=response[1])",
             f"saved {saved.name}: {saved.stat().st_size} bytes")

        result = client.pennsieve.get(
            'https://api.pennsieve.io/discover/datasets/90/versions/1/files/browse',
            params={'limit': 2})
        show("client.pennsieve.get('https://api.pennsieve.io/discover/datasets/90/versions/1"
             "/files/browse', params={'limit':2})", result)

        # --- beyond the guide ------------------------------------------------------------------
        result = client.pennsieve.download(90, "metadata/records", "data", progress=False)
        show("client.pennsieve.download(90, 'metadata/records', 'data')  # parallel, verified",
             [f"{f.path}: {f.status}, checked by {f.check}" for f in result.files]
             + [result.summary()])
        again = client.pennsieve.download(90, "metadata/records", "data", progress=False)
        show("the same download again (complete files are skipped, nothing re-hashed)",
             again.summary())

        # fault injection: a burst of 503s and a dropped stream; the client rides through both
        sandbox.set_faults([
            {"route": "/discover/search/*", "kind": "status", "status": 503, "count": 2},
            {"route": "/_assets/*", "kind": "reset", "after_bytes": 1000, "count": 1},
        ])
        found = client.pennsieve.list_datasets(query='cancer', limit=2)
        resumed = client.pennsieve.download(90, "files/derivative", "faulty", progress=False)
        show("under injected faults (2 x 503 on search, a connection dropped mid-file)",
             [f"search still found {found['totalCount']} datasets", resumed.summary()])
        sandbox.clear_faults()

        show("client.zinc.export(292 | 107, format=...)  # scaffolds and segmentations to meshes",
             zinc_demo(client))

        # --- the guide's o2S2PARC section, verbatim (O2SPARC_* point at the sandbox) ---------
        import demo_o2sparc  # examples/demo_o2sparc.py: the guide's cells, run as written

        print("\n### the guide's o2S2PARC section (sleeper 2.0.2 really sleeps 3 s)")
        demo_o2sparc.run()["pbar"].close()
        demo_o2sparc.beyond(client)

        # --- Pennsieve sign-in and agent-free upload (PENNSIEVE_API_KEY/SECRET, ...) ----------
        import demo_upload  # examples/demo_upload.py

        print("\n### sign in, create a dataset, upload a folder (no Pennsieve Agent)")
        demo_upload.run(client)
        client.close()
        stats = sandbox.stats()
        show("sandbox /_sandbox/stats", {"requests_total": stats["requests_total"],
                                         "bytes_sent": stats["bytes_sent"]})
    print("\ndemo finished: the sandbox is stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
