"""``sparc o2sparc ...``: run o²S²PARC solvers from the command line.

Host and credentials come from the config file or ``O2SPARC_HOST``, ``O2SPARC_USERNAME`` (API
key) and ``O2SPARC_PASSWORD`` (API secret), e.g. as ``sparc sandbox serve`` prints them.
Data goes to stdout (``--json`` for machines); progress bars go to stderr. Examples::

    sparc o2sparc profile
    sparc o2sparc solvers --all
    sparc o2sparc ports simcore/services/comp/itis/sleeper 2.0.2
    sparc o2sparc run simcore/services/comp/itis/sleeper 2.0.2 \\
        --input input_1=@number.txt --input input_2=1 --input input_3=false -o results/
    sparc o2sparc jobs simcore/services/comp/itis/sleeper 2.0.2
    sparc o2sparc logs simcore/services/comp/itis/sleeper 2.0.2 JOB_ID -o logs/

Errors are one line on stderr (exit 1), shown by the root group (:mod:`sparc.cli._errors`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sparc.cli._errors import BadArgumentLine
from sparc.cli._pennsieve import _client, _emit, json_option


def _service(ctx: click.Context) -> Any:
    """The command's ``client.o2sparc`` (one client per command, closed at its end)."""
    return _client(ctx).o2sparc


def _show(value: Any) -> str:
    return str(value) if isinstance(value, (str, Path)) else json.dumps(value, default=str)


def parse_input(text: str) -> tuple[str, Any]:
    """``name=value`` -> ``(name, value)``: ``@path`` is a file (``pathlib.Path``), JSON values
    (``3``, ``2.5``, ``true``, ``[1, 2]``) are decoded, anything else stays a string.

    >>> parse_input("input_2=3")
    ('input_2', 3)
    """
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise BadArgumentLine(f"--input {text!r}: expected NAME=VALUE or NAME=@FILE")
    if value.startswith("@"):
        return name, Path(value[1:]).expanduser()
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


#: Control characters a log could use to drive the terminal (escape sequences, a lone CR
#: rewriting a line...): everything below space but tab and line feed, DEL and C1 CSI.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")


def terminal_safe(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN`` (a server's log printed to a
    terminal cannot move the cursor, recolour or retitle it). ``\\r\\n`` stays a line end.

    >>> terminal_safe("ok\\x1b[2J\\r\\n")
    'ok\\\\x1b[2J\\n'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))


solver_arguments = [click.argument("solver"), click.argument("version")]


def _solver_args(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(solver_arguments):
        func = decorator(func)
    return func


@click.group()
def o2sparc() -> None:
    """o²S²PARC: your profile, solvers, and jobs that run them.

    Needs the o2sparc extra (pip install 'sparc.client[o2sparc]') and O2SPARC_HOST,
    O2SPARC_USERNAME (API key), O2SPARC_PASSWORD (API secret), or the config file's
    o2sparc_host/o2sparc_username/o2sparc_password.
    """


@o2sparc.command("profile")
@json_option
@click.pass_context
def profile(ctx: click.Context, as_json: bool) -> None:
    """Who the API key belongs to."""
    user = _service(ctx).get_user()
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    _emit(user, as_json, lambda u: [f"{u['login']}" + (f" ({name})" if name else "")
                                    + (f", role {u.get('role')}" if u.get("role") else "")])


@o2sparc.command("solvers")
@click.option("--all", "all_releases", is_flag=True, help="Every release, not only the latest.")
@json_option
@click.pass_context
def solvers(ctx: click.Context, all_releases: bool, as_json: bool) -> None:
    """List the solvers (latest release of each)."""
    items = [s.as_dict() for s in _service(ctx).list_solvers(all_releases=all_releases)]
    _emit(items, as_json, lambda ss: [f"{s['key']}  {s['version']:<8}  {s['title']}"
                                      for s in ss])


@o2sparc.command("releases")
@click.argument("solver")
@json_option
@click.pass_context
def releases(ctx: click.Context, solver: str, as_json: bool) -> None:
    """List the releases of SOLVER (oldest first)."""
    items = [s.as_dict() for s in _service(ctx).list_solver_releases(solver)]
    _emit(items, as_json, lambda ss: [f"{s['version']:<10}  {s['title']}" for s in ss])


@o2sparc.command("ports")
@_solver_args
@json_option
@click.pass_context
def ports(ctx: click.Context, solver: str, version: str, as_json: bool) -> None:
    """List the inputs and outputs of SOLVER at VERSION."""
    items = [p.as_dict() for p in _service(ctx).get_solver(solver, version).ports]
    _emit(items, as_json, lambda ps: [
        f"{p['kind']:<6}  {p['key']:<10}  {p['type'] or '-':<8}  "
        f"{'required' if p['required'] else 'optional' if p['kind'] == 'input' else '':<8}  "
        f"{p['title'] or ''}" for p in ps])


@o2sparc.command("run")
@_solver_args
@click.option("-i", "--input", "inputs", multiple=True, metavar="NAME=VALUE|NAME=@FILE",
              help="A job input (repeatable): a JSON value (3, 2.5, true) or text, or @FILE.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the output files [default: a new temporary folder].")
@click.option("--timeout", type=click.FloatRange(0), help="Give up waiting after SECONDS.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar [default: when stderr is a terminal].")
@json_option
@click.pass_context
def run(ctx: click.Context, solver: str, version: str, inputs: tuple[str, ...],
        output_dir: Path | None, timeout: float | None, progress: bool | None,
        as_json: bool) -> None:
    """Run SOLVER at VERSION once and print its outputs (files: their paths).

    \b
        sparc o2sparc run simcore/services/comp/itis/sleeper 2.0.2 \\
            -i input_1=@number.txt -i input_2=1 -i input_3=false -o out/
    """
    values = dict(parse_input(text) for text in inputs)
    show = sys.stderr.isatty() if progress is None else progress
    s = _service(ctx).get_solver(solver, version)
    job_id = s.submit_job(values)
    click.echo(f"job {job_id}", err=True)
    s.wait(job_id, timeout=timeout, progress=show)
    results = s.get_results(job_id, output_dir=output_dir)
    data = {"job_id": job_id, "results": {k: str(v) if isinstance(v, Path) else v
                                          for k, v in results.items()}}
    _emit(data, as_json, lambda d: [f"{k}: {_show(v)}" for k, v in results.items()])


@o2sparc.command("jobs")
@_solver_args
@click.option("--limit", type=click.IntRange(0), help="At most this many jobs.")
@click.option("--status", "with_status", is_flag=True,
              help="Also ask each job's state (one request per job).")
@json_option
@click.pass_context
def jobs(ctx: click.Context, solver: str, version: str, limit: int | None, with_status: bool,
         as_json: bool) -> None:
    """List the jobs of SOLVER at VERSION."""
    s = _service(ctx).get_solver(solver, version)
    items = [j.as_dict() for j in s.list_jobs(limit=limit)]
    if with_status:
        for item in items:
            status = s.get_job_status(item["id"])
            item["state"], item["progress"] = status.state, status.progress
    _emit(items, as_json, lambda js: [
        f"{j['id']}  {j['created_at'] or '':<32}"
        + (f"  {j['state']:<10} {j['progress']:>4.0%}" if with_status else "") for j in js])


@o2sparc.command("status")
@_solver_args
@click.argument("job_id")
@json_option
@click.pass_context
def status(ctx: click.Context, solver: str, version: str, job_id: str, as_json: bool) -> None:
    """Show the state and progress of one job."""
    st = _service(ctx).get_solver(solver, version).get_job_status(job_id)
    _emit(st.as_dict(), as_json, lambda d: [f"{d['state']} {d['progress']:.0%}"
                                            + (f" (stopped {d['stopped_at']})"
                                               if d["stopped_at"] else "")])


@o2sparc.command("logs")
@_solver_args
@click.argument("job_id")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Extract the log files here (and print their paths) instead of printing "
                   "the log.")
@click.pass_context
def logs(ctx: click.Context, solver: str, version: str, job_id: str,
         output_dir: Path | None) -> None:
    """Print the log of a finished job (or save its files with -o)."""
    s = _service(ctx).get_solver(solver, version)
    if output_dir is None:
        text = s.get_job_log_text(job_id)
        sys.stdout.write(terminal_safe(text) if sys.stdout.isatty() else text)
        return
    for path in s.download_job_log(job_id, output_dir):
        click.echo(str(path))


@o2sparc.command("stop")
@_solver_args
@click.argument("job_id")
@click.pass_context
def stop(ctx: click.Context, solver: str, version: str, job_id: str) -> None:
    """Stop a running job."""
    st = _service(ctx).get_solver(solver, version).stop_job(job_id)
    click.echo(f"{job_id} {st.state}")


@o2sparc.command("delete")
@_solver_args
@click.argument("job_id")
@click.pass_context
def delete(ctx: click.Context, solver: str, version: str, job_id: str) -> None:
    """Delete a job and its outputs."""
    _service(ctx).get_solver(solver, version).delete_job(job_id)
    click.echo(f"{job_id} deleted")
