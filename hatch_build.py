"""Build hook: compiles ``sparc.client._md5lanes`` (eight MD5 streams at once, AVX2), if it can.

The module only speeds up checking multipart ETags (see ``src/sparc/client/_md5parts.py``):
without a C compiler, Python headers or an x86-64 CPU, the build goes on without it, with a
warning, and downloads hash with ``hashlib`` as before. Editable installs (``make env``) get the
module next to its source; wheels carry it, tagged for this interpreter and platform.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src/sparc/client/_md5lanes.c")
#: Set to 1 to build without the C module (e.g. to test the pure-Python fallback).
SKIP_ENV = "SPARC_NO_EXTENSIONS"


class Md5LanesBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        target = root / SOURCE.with_name("_md5lanes" + sysconfig.get_config_var("EXT_SUFFIX"))
        target.unlink(missing_ok=True)  # never an older build left behind
        if os.environ.get(SKIP_ENV) == "1":
            return
        try:
            compile_module(root / SOURCE, target)
        except (OSError, subprocess.SubprocessError) as exc:
            output = getattr(exc, "stderr", "") or ""
            if isinstance(output, bytes):  # (a timeout's output stays bytes)
                output = output.decode(errors="replace")
            self.app.display_warning(f"sparc.client: _md5lanes not built ({exc}); multipart "
                                     f"ETags will be checked with hashlib\n{output[-2000:]}")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install finds it beside its source
            build_data["force_include"][str(target)] = str(target.relative_to(root / "src"))


def compile_module(source: Path, target: Path) -> None:
    """``cc -O3 -shared`` of ``source`` against this interpreter's headers, into ``target``."""
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    flags = ["-O3", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall"]
    if sys.platform == "darwin":
        flags += ["-undefined", "dynamic_lookup"]
    partial = target.with_suffix(".tmp")
    try:
        subprocess.run([*compiler, *flags, f"-I{include}", str(source), "-o", str(partial)],
                       check=True, capture_output=True, text=True, timeout=300)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
