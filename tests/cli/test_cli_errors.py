"""Every CLI error is ONE line on stderr naming what and where (exit 1); usage errors stay
click's (exit 2); Ctrl-C exits 130; ``--traceback`` / ``SPARC_DEBUG=1`` show the traceback.

Each case runs ``sparc`` as a real process, so stdout/stderr, signals and exit codes are real.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import (
    SPARC,
    SparcChild,
    assert_one_line_error,
    download_and_edit,
    error_lines,
    sparc_env,
    sparc_run,
)

from sparc.sandbox.process import SandboxProcess


def test_unknown_dataset_is_one_not_found_line(sandbox: SandboxProcess) -> None:
    done = sparc_run(sandbox.env, "datasets", "show", "987654")
    assert_one_line_error(done, "NotFoundError", "/discover/datasets/987654")
    assert done.stdout == ""


def test_unknown_folder_in_files_ls_is_one_not_found_line(sandbox: SandboxProcess) -> None:
    done = sparc_run(sandbox.env, "files", "ls", "90", "nope")
    assert_one_line_error(done, "NotFoundError", "nope")


def test_traceback_flag_and_sparc_debug_show_the_traceback(sandbox: SandboxProcess) -> None:
    for args, extra_env in ((["--traceback"], {}), ([], {"SPARC_DEBUG": "1"})):
        done = sparc_run(sandbox.env, *args, "datasets", "show", "987654", extra_env=extra_env)
        assert done.returncode == 1, done.stderr
        assert "Traceback (most recent call last)" in done.stderr
        assert "NotFoundError" in done.stderr.splitlines()[-1]
    quiet = sparc_run(sandbox.env, "datasets", "show", "987654", extra_env={"SPARC_DEBUG": "0"})
    assert_one_line_error(quiet, "NotFoundError")


def test_missing_config_file_is_an_error_but_a_missing_default_is_fine(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    missing = tmp_path / "no-such.ini"
    done = sparc_run(sandbox.env, "--config", str(missing), "datasets", "show", "90")
    assert_one_line_error(done, str(missing), "--config", exit_code=2)
    folder = sparc_run(sandbox.env, "--config", str(tmp_path), "datasets", "show", "90")
    assert_one_line_error(folder, str(tmp_path), exit_code=2)
    # No --config: no file is needed (the environment points at the sandbox).
    fine = sparc_run(sandbox.env, "datasets", "show", "90", cwd=tmp_path)
    assert fine.returncode == 0 and "doi:" in fine.stdout, fine.stderr
    assert error_lines(fine.stderr) == []
    # A --config that exists is used: here it alone points sparc at the sandbox.
    ini = tmp_path / "sparc.ini"
    ini.write_text(f"[global]\ndefault_profile = box\n\n[box]\n"
                   f"pennsieve_api_host = {sandbox.url}\n")
    used = sparc_run({}, "--config", str(ini), "datasets", "show", "90",
                     extra_env={"PENNSIEVE_API_HOST": None})
    assert used.returncode == 0 and "doi:" in used.stdout, used.stderr


def test_output_folder_under_a_file(sandbox: SandboxProcess, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    target = a_file / "out"
    done = sparc_run(sandbox.env, "download", "90", "metadata/records", "-o", str(target))
    line = assert_one_line_error(done, str(target))
    assert "Not a directory" in line or "NotADirectoryError" in line


def test_output_folder_not_writable(sandbox: SandboxProcess, tmp_path: Path) -> None:
    """A folder we may not write in: a read-only one (root ignores modes: sysfs refuses root)."""
    if os.geteuid() == 0:
        target = Path("/sys/sparc-cli-test-output")
        if not Path("/sys").is_dir():
            pytest.fail("running as root without /sys: no read-only folder to test with")
    else:
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o555)
        target = read_only / "out"
    done = sparc_run(sandbox.env, "download", "90", "metadata/records", "-o", str(target))
    line = assert_one_line_error(done, str(target))
    assert "not permitted" in line or "Permission denied" in line, line


@pytest.mark.parametrize("args", [("datasets", "search", "cancer", "--json"), ("--help",),
                                  ("--version",), ("download", "--help")])
def test_full_disk_on_stdout(sandbox: SandboxProcess, args: tuple[str, ...]) -> None:
    """``sparc datasets search cancer --json > /dev/full``: ENOSPC, one line naming stdout
    (also for the root's --help/--version, which click writes before any command runs)."""
    with open("/dev/full", "w") as full:
        done = sparc_run(sandbox.env, *args, stdout=full, stderr=subprocess.PIPE)
    line = assert_one_line_error(done, "No space left on device", "<stdout>")
    assert "Exception ignored" not in done.stderr, line


def test_stdout_closed_early_is_one_broken_pipe_line(sandbox: SandboxProcess) -> None:
    """``sparc datasets search ... | head -0``: the reader is gone before we write (EPIPE)."""
    proc = subprocess.Popen([*SPARC, "datasets", "search", "--limit", "50", "--json"],
                            env=sparc_env(sandbox.env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # before the child has even imported click: its first write fails
    _, stderr = proc.communicate(timeout=60)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
    assert_one_line_error(done, "Broken pipe", "<stdout>")


def test_failed_file_exits_1_after_the_summary(timed_sandbox: SandboxProcess,
                                               tmp_path: Path) -> None:
    """Every copy of a file arrives corrupted: the result says so (--json, summary line), one
    error line names the file, exit 1, and nothing lands at the final name."""
    path = "metadata/records/award.csv"
    timed_sandbox.reset()
    timed_sandbox.set_faults([{"route": "GET /_assets/*", "kind": "corrupt", "after_bytes": 10}])
    try:
        done = sparc_run(timed_sandbox.env, "download", "90", path, "-o", str(tmp_path),
                         "--json", timeout=120)
    finally:
        timed_sandbox.reset()
    assert done.returncode == 1, done.stderr
    [entry] = json.loads(done.stdout)["files"]
    assert entry["status"] == "failed" and entry["path"] == path
    # each failed check and retry is a visible Warning line; then the summary and the error
    summary, error = [line for line in error_lines(done.stderr)
                      if not line.startswith("Warning: ")]
    assert any(path in line or "award.csv" in line for line in error_lines(done.stderr)
               if line.startswith("Warning: ")), done.stderr
    assert "0 downloaded" in summary and "1 failed" in summary
    assert error.startswith("Error: ") and path in error and "Traceback" not in done.stderr
    assert not (tmp_path / path).exists()


def test_library_warning_is_one_line(sandbox: SandboxProcess, tmp_path: Path) -> None:
    """--existing skip keeps a locally changed file and says so: one Warning line."""
    path = "metadata/records/term.csv"
    download_and_edit(sandbox.env, tmp_path, path)
    done = sparc_run(sandbox.env, "download", "90", path, "-o", str(tmp_path), "-q",
                     "--existing", "skip")
    assert done.returncode == 0, done.stderr
    [line] = error_lines(done.stderr)
    assert line.startswith("Warning: ") and str(tmp_path / path) in line
    assert (tmp_path / path).read_text().endswith("a local edit\n")


def test_usage_errors_stay_clicks(sandbox: SandboxProcess) -> None:
    done = sparc_run(sandbox.env, "datasets", "show", "not-a-number")
    assert done.returncode == 2 and "Usage:" in done.stderr and "Traceback" not in done.stderr
    bad_choice = sparc_run(sandbox.env, "download", "90", "--existing", "sometimes")
    assert bad_choice.returncode == 2 and "'sometimes'" in bad_choice.stderr


def test_ctrl_c_exits_130_with_one_line(timed_sandbox: SandboxProcess) -> None:
    """SIGINT while a search waits on a slow server: exit 130 at once, one line, no traceback."""
    timed_sandbox.set_faults([{"route": "/discover/search/*", "kind": "slow", "seconds": 30}])
    try:
        child = SparcChild(timed_sandbox.env, "-vv", "datasets", "search", "cancer")
        child.wait_for_stderr("waiting for the answer")
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
        code = child.wait(timeout=10)
        assert time.monotonic() - sent < 2, "sparc did not stop within 2 s of Ctrl-C"
    finally:
        timed_sandbox.clear_faults()
    assert code == 130, child.stderr_lines
    assert child.error_lines() == ["interrupted"], child.stderr_lines
    assert child.stdout == ""


def test_help_is_fast_without_heavy_imports() -> None:
    """``sparc --help`` (and a command's help) import neither httpx, tqdm nor Zinc's stack."""
    code = ("import sys\nfrom sparc.cli import cli\n"
            "for args in (['--help'], ['download', '--help'], ['datasets', 'search', '-h'],"
            " ['zinc', '--help']):\n"
            "    try:\n        cli.main(args, prog_name='sparc')\n"
            "    except SystemExit as exc:\n        assert exc.code == 0, exc.code\n"
            "heavy = [m for m in ('httpx', 'tqdm', 'sparc.client.services.pennsieve',"
            " 'cmlibs', 'scaffoldmaker', 'numpy')"
            " if m in sys.modules]\nassert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "sparc download" in done.stdout or "DATASET_ID" in done.stdout


def test_describe_names_what_and_where() -> None:
    """The one line for each kind of error (pure functions, no process needed)."""
    from sparc.cli._errors import MAX_MESSAGE, describe, one_line
    from sparc.client.errors import NotFoundError, TransportError

    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "<stdout>")
    assert describe(full) == "No space left on device: <stdout>"
    assert describe(BrokenPipeError(errno.EPIPE, "Broken pipe")) == "Broken pipe: <stdout>"
    moved = OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")
    assert describe(moved) == "Invalid cross-device link: /a -> /b"
    gone = NotFoundError("no such dataset", status=404, method="GET", url="http://h/d/9")
    assert describe(gone) == "NotFoundError: no such dataset (GET http://h/d/9)"
    refused = TransportError("GET http://h/x failed", method="GET", url="http://h/x")
    assert describe(refused) == "TransportError: GET http://h/x failed"
    assert describe(ValueError("odd")).startswith("unexpected ValueError: odd")
    assert one_line("a\n  b  c\r\n") == "a b  c"
    assert len(one_line("x" * 10 * MAX_MESSAGE)) == MAX_MESSAGE
