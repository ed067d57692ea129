"""Running solver jobs: an asyncio task per started job, on the server's event loop.

Lifecycle (director-v2's): ``PUBLISHED`` -> ``PENDING`` -> ``STARTED`` -> ``SUCCESS`` | ``FAILED``
(``:stop`` -> ``ABORTED``). ``stopped_at`` is set exactly when the state becomes terminal, and the
log (``logs.zip`` holding ``<name>_<version>.logs``) is written then. Every simulated delay is
multiplied by the sandbox's ``--time-scale``.

Inputs are checked when the service reads them, as the real sidecar does: a missing required
input, a value that does not fit its port (pydantic's lax coercion: ``0``/``"false"`` for a
boolean, ``3.0`` for an integer) or a file that is not in storage makes the job FAIL with the
reason in ``JobStatus.errors`` and in the log.

Example: ``job.task = asyncio.get_running_loop().create_task(run_job(state, job))``.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import math
import random
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparc.sandbox.o2sparc.catalog import Port
from sparc.sandbox.o2sparc.state import NAMESPACE_FILEID_KEY, Job, O2State, now

PROGRESS_STEPS = 20
QUEUE_SECONDS = 0.1  # time spent in each of PUBLISHED and PENDING (x time-scale)
MAX_DREAM_BYTES = 10 * 2**20
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


class JobFailure(Exception):
    """The service exited with an error: ``message`` goes to the log and to ``JobStatus.errors``."""


@dataclass
class Context:
    """What a service run sees: its job, resolved inputs, and helpers to report and write outputs."""

    state: O2State
    job: Job
    inputs: dict[str, Any]  # port name -> coerced value; file ports -> Path

    @property
    def scale(self) -> float:
        return self.state.time_scale

    def log(self, message: str) -> None:
        self.job.write_log(message)

    def progress(self, fraction: float) -> None:
        self.job.progress = max(self.job.progress, min(100, round(fraction * 100)))

    async def sleep(self, seconds: float, start: float = 0.0, end: float = 1.0) -> None:
        """Sleep ``seconds`` (x time-scale) in steps, moving progress from ``start`` to ``end``."""
        for step in range(1, PROGRESS_STEPS + 1):
            await asyncio.sleep(seconds * self.scale / PROGRESS_STEPS)
            self.progress(start + (end - start) * step / PROGRESS_STEPS)
            if step % 5 == 0:
                self.log(f"[PROGRESS] {step}/{PROGRESS_STEPS}")

    def output_file(self, name: str, data: bytes | str) -> dict[str, Any]:
        """Write output ``name`` (its port's file name) and register it as a downloadable File."""
        port = self.job.release.outputs[name]
        filename = port.file_name or name
        raw = data.encode() if isinstance(data, str) else data
        path = self.job.folder / "outputs" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        file_id = str(uuid.uuid3(NAMESPACE_FILEID_KEY, f"{self.job.id}:{self.job.node_id}:{filename}"))
        stored = self.state.store_file(file_id, filename, path, sha256=None,
                                       e_tag=hashlib.md5(raw).hexdigest(), listed=False,
                                       object_key=f"{self.job.id}/{self.job.node_id}/{filename}")
        return stored.to_json()


# ---- input coercion (pydantic lax mode) -------------------------------------------------------------
def _coerce(name: str, port: Port, value: Any, state: O2State) -> Any:
    kind = port.value_type
    if kind == "file":
        if not isinstance(value, dict) or "id" not in value:
            raise JobFailure(f"{name}: expected a File, got {value!r}")
        stored = state.files.get(str(value["id"]))
        if stored is None or not stored.listed or stored.filename != value.get("filename", stored.filename):
            raise JobFailure(f"{name}: file {value.get('filename')!r} ({value['id']}) not found in storage")
        return stored.path
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise JobFailure(f"{name}: Input should be a valid boolean, got {value!r}")
    if kind in ("integer", "number"):
        number = _number(name, value, integer=kind == "integer")
        schema = port.content_schema or {}
        if "minimum" in schema and number < schema["minimum"]:
            raise JobFailure(f"{name}: Input should be greater than or equal to {schema['minimum']}, "
                             f"got {value!r}")
        if "maximum" in schema and number > schema["maximum"]:
            raise JobFailure(f"{name}: Input should be less than or equal to {schema['maximum']}, "
                             f"got {value!r}")
        return number
    if kind == "string":
        if not isinstance(value, str):
            raise JobFailure(f"{name}: Input should be a valid string, got {value!r}")
        return value
    return value


def _number(name: str, value: Any, integer: bool) -> float | int:
    what = "integer" if integer else "number"
    if isinstance(value, str):
        try:
            value = float(value.strip()) if not integer or "." in value else int(value.strip())
        except ValueError:
            raise JobFailure(f"{name}: Input should be a valid {what}, got {value!r}") from None
    try:
        finite = isinstance(value, bool | int | float) and math.isfinite(value)
    except OverflowError:  # an integer beyond a double
        finite = False
    if finite:
        if not integer:
            return value
        if float(value).is_integer():
            return int(value)
        raise JobFailure(f"{name}: Input should be a valid integer, got a number with a fractional part "
                         f"({value!r})")
    raise JobFailure(f"{name}: Input should be a valid {what}, got {value!r}")


def resolve_inputs(state: O2State, job: Job) -> dict[str, Any]:
    """The inputs as the service sees them: defaults filled, values coerced, files as paths."""
    out: dict[str, Any] = {}
    for name in job.values:
        if name not in job.release.inputs:
            job.write_log(f"WARNING: ignoring {name!r}: {job.release.name} {job.release.version} "
                          "has no such input")
    for name, port in job.release.inputs.items():
        value = job.values.get(name)
        if value is None:
            if port.required:
                raise JobFailure(f"{name}: required input ({port.label}) is not set")
            out[name] = port.default
            continue
        out[name] = _coerce(name, port, value, state)
    return out


# ---- services ---------------------------------------------------------------------------------------
async def sleeper(ctx: Context) -> dict[str, Any]:
    """itis/sleeper: read the int in input_1, walk input_4 m, sleep input_2 s, fail if input_3."""
    text = ctx.inputs["input_1"].read_text(errors="replace").strip()
    try:
        number = int(text)
    except ValueError:
        raise JobFailure(f"input_1: expected a file containing only one integer, got {text[:40]!r}") from None
    ctx.log(f"Reading input_1 (single_number.txt): {number}")
    if ctx.inputs.get("input_4"):
        ctx.log(f"Walking {ctx.inputs['input_4']} m to bed")
    seconds = ctx.inputs["input_2"]
    two_times = "input_5" in ctx.job.release.inputs
    if two_times:
        ctx.log(f"Sleeping for {seconds / 2:g} seconds (1/2)")
        await ctx.sleep(seconds / 2, 0.0, 0.5)
        ctx.log(f"Sleeping for {seconds / 2:g} seconds (2/2)")
        await ctx.sleep(seconds / 2, 0.5, 1.0)
    else:
        ctx.log(f"Sleeping for {seconds:g} seconds")
        await ctx.sleep(seconds)
    if ctx.inputs["input_3"]:
        raise JobFailure("Failing after sleep: input_3 (Fail after sleep) is true")
    rng = random.Random(ctx.job.id)
    output_number, interval = rng.randint(1, 9), rng.randint(1, 9)
    results: dict[str, Any] = {"output_1": ctx.output_file("output_1", f"{output_number}\n"),
                               "output_2": interval}
    ctx.log(f"Wrote output_1 (single_number.txt): {output_number}; output_2: {interval}")
    if two_times:
        size = min(int(ctx.inputs.get("input_5") or 0), MAX_DREAM_BYTES)
        results["output_3"] = ctx.output_file("output_3", rng.randbytes(size))
        ctx.log(f"Dreamt {size} bytes (dream.txt)")
    return results


def _csv_summary(path: Path, delimiter: str) -> tuple[str, int, list[str]]:
    text = path.read_bytes().decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise JobFailure("input_1: the CSV table is empty (no header row)")
    columns: list[list[float]] = [[] for _ in header]
    rows = 0
    for row in reader:
        if not row:
            continue
        rows += 1
        for i, cell in enumerate(row[:len(header)]):
            try:
                value = float(cell)
            except ValueError:
                continue
            if math.isfinite(value):
                columns[i].append(value)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["column", "count", "mean", "min", "max"])
    numeric = []
    for name, values in zip(header, columns, strict=True):
        if values:
            numeric.append(name)
            writer.writerow([name, len(values), repr(sum(values) / len(values)), repr(min(values)),
                             repr(max(values))])
    return out.getvalue(), rows, numeric


async def csv_stats(ctx: Context) -> dict[str, Any]:
    """sparc/csv-stats: count/mean/min/max of each numeric column of input_1 -> output_1, rows -> output_2."""
    delimiter = ctx.inputs["input_2"]
    if len(delimiter) != 1:
        raise JobFailure(f"input_2: the delimiter must be one character, got {delimiter!r}")
    ctx.log(f"Reading the CSV table (delimiter {delimiter!r})")
    await ctx.sleep(0.5, 0.0, 0.5)
    try:
        summary, rows, numeric = await asyncio.to_thread(_csv_summary, ctx.inputs["input_1"], delimiter)
    except UnicodeDecodeError:
        raise JobFailure("input_1: the CSV table is not UTF-8 text") from None
    except csv.Error as exc:
        raise JobFailure(f"input_1: malformed CSV: {exc}") from None
    ctx.log(f"{rows} rows; numeric columns: {', '.join(numeric) or '(none)'}")
    await ctx.sleep(0.5, 0.5, 1.0)
    return {"output_1": ctx.output_file("output_1", summary), "output_2": rows}


SERVICES: dict[str, Callable[[Context], Awaitable[dict[str, Any]]]] = {
    "sleeper": sleeper, "csv_stats": csv_stats}


# ---- the run -----------------------------------------------------------------------------------------
def write_logs_zip(job: Job) -> Path:
    """``logs.zip`` (stored, not deflated) holding ``<name>_<version>.logs``."""
    path = job.folder / "logs.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{job.release.name}_{job.release.version}.logs",
                         ("\n".join(job.log) + "\n").encode("utf-8", "backslashreplace"))
    return path


def finish(state: O2State, job: Job, final: str, message: str | None = None) -> None:
    """Enter terminal state ``final`` and publish the log; ``message`` is the failure reason."""
    if message:
        job.write_log(f"ERROR: {message}")
        job.errors = [{"loc": [job.id, job.node_id], "msg": message, "type": "runtime"}]
    job.write_log(f"Service {job.release.name} {job.release.version} finished: {final}")
    if final == "SUCCESS":
        job.progress = 100
    job.logs_zip = write_logs_zip(job)
    state.objects[f"{job.id}/{job.node_id}/logs.zip"] = job.logs_zip
    job.stopped_at = now()
    job.state = final


async def run_job(state: O2State, job: Job) -> None:
    """Run ``job`` to a terminal state (cancelling the task is ``:stop``: ABORTED)."""
    try:
        job.state, job.submitted_at = "PUBLISHED", now()
        await asyncio.sleep(QUEUE_SECONDS * state.time_scale)
        job.state = "PENDING"
        await asyncio.sleep(QUEUE_SECONDS * state.time_scale)
        job.state, job.started_at = "STARTED", now()
        job.write_log(f"Starting {job.release.key}:{job.release.version} (job {job.id})")
        inputs = resolve_inputs(state, job)
        results = await SERVICES[job.release.runner](Context(state, job, inputs))
    except asyncio.CancelledError:
        if job.state not in ("SUCCESS", "FAILED", "ABORTED"):
            job.write_log("Stopped by the user")
            finish(state, job, "ABORTED", None)
        raise
    except JobFailure as failure:
        finish(state, job, "FAILED", str(failure))
    except Exception as exc:  # noqa: BLE001 - a bug in the emulation: the job fails, the server lives
        finish(state, job, "FAILED", f"Unexpected error: {type(exc).__name__}: {exc}")
    else:
        job.results = results
        finish(state, job, "SUCCESS")
    finally:
        if job.state not in ("SUCCESS", "FAILED", "ABORTED"):  # finish() itself failed
            job.stopped_at, job.state = now(), "FAILED"
