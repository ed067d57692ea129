"""What ``sparc`` logs to stderr: no presigned secrets at any verbosity, each request once at
``-v``, and the library's retries visible at the default verbosity (but not under ``--quiet``)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from cli_helpers import SparcChild, download_and_edit, error_lines, sparc_run

from sparc.cli._logging import redact
from sparc.sandbox.process import SandboxProcess

SIGNATURE = re.compile(r"X-Amz-Signature=([^&\s\"'<>]*)")
SECRET_VALUES = re.compile(r"X-Amz-(?:Security-Token|Credential)=([^&\s\"'<>]*)")
UNREACHABLE = "http://127.0.0.1:1"  # nothing listens on port 1: every connection is refused


@pytest.mark.parametrize("verbosity", ["-v", "-vv"])
def test_verbose_logs_never_show_presigned_secrets(sandbox: SandboxProcess, tmp_path: Path,
                                                   verbosity: str) -> None:
    done = sparc_run(sandbox.env, verbosity, "download", "90", "manifest.json",
                     "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr
    signatures = SIGNATURE.findall(done.stderr)
    assert signatures, "the asset request is logged (with its signature masked)"
    assert set(signatures) == {"***"}, done.stderr
    assert set(SECRET_VALUES.findall(done.stderr)) == {"***"}
    if verbosity == "-v":  # each request once: httpx's own request log is left out
        assert " httpx:" not in done.stderr and " httpcore" not in done.stderr
        asset_lines = [line for line in done.stderr.splitlines() if "/_assets/" in line]
        assert len(asset_lines) == 1, asset_lines
    else:
        assert "DEBUG httpcore" in done.stderr


def test_redact_masks_secret_query_values_user_info_and_headers() -> None:
    assert redact("GET https://u:p@h/o?X-Amz-Signature=ab%2F&x=1&apiKey=k") == \
        "GET https://***@h/o?X-Amz-Signature=***&x=1&apiKey=***"
    assert redact("[(b'Authorization', b'Bearer abc'), (b'date', b'Sun')]") == \
        "[(b'Authorization', b'***'), (b'date', b'Sun')]"
    assert redact("no secrets here: a=b") == "no secrets here: a=b"


def test_cli_masks_the_same_words_as_the_library() -> None:
    """The CLI's word list (kept apart so ``sparc --help`` does not import httpx) is the
    library's."""
    from sparc.cli._logging import SECRET_WORDS
    from sparc.client._http import SECRET_PARAM_WORDS

    assert SECRET_WORDS == SECRET_PARAM_WORDS


def test_retries_are_visible_at_default_verbosity() -> None:
    """An unreachable API: the first retry shows on stderr at once (within ~3 s of start-up,
    more on a loaded machine), while the command still runs; one line per retry."""
    child = SparcChild({}, "datasets", "search", "x", PENNSIEVE_API_HOST=UNREACHABLE)
    try:
        child.wait_for_stderr("retrying in", timeout=8)
        assert child.proc.poll() is None, "the retries are shown as they happen, not at the end"
    finally:
        child.proc.kill()
        child.proc.wait()
    [line, *_] = [line for line in child.stderr_lines if "retrying in" in line]
    assert line.startswith("Warning: retrying in ") and "(retry 1 of " in line, line
    assert f"GET {UNREACHABLE}/discover/search/datasets" in line and "ConnectError" in line


def test_quiet_download_hides_retries() -> None:
    child = SparcChild({}, "download", "90", "manifest.json", "-q",
                       PENNSIEVE_API_HOST=UNREACHABLE)
    try:
        time.sleep(3)  # the first retries happen within this time
        assert child.proc.poll() is None
        assert child.stderr_lines == []
    finally:
        child.proc.kill()
        child.proc.wait()


def test_logged_and_warned_text_is_shown_once(sandbox: SandboxProcess, tmp_path: Path) -> None:
    """The library logs a kept, locally changed file AND warns about it: one Warning line."""
    path = "metadata/records/term.csv"
    download_and_edit(sandbox.env, tmp_path, path)
    done = sparc_run(sandbox.env, "download", "90", path, "-o", str(tmp_path),
                     "--existing", "skip")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in error_lines(done.stderr) if line.startswith("Warning: ")]
    assert len(warnings) == 1 and str(tmp_path / path) in warnings[0], done.stderr
