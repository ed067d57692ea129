"""``O2SparcSolver``: one release of an o²S²PARC solver, and its jobs.

Example::

    solver = client.o2sparc.get_solver(solver_key="simcore/services/comp/itis/sleeper",
                                       solver_version="2.0.2")
    job_id = solver.submit_job({"input_3": 0, "input_2": 3.0, "input_1": Path("in.txt")})
    solver.wait(job_id)                      # a progress bar; JobFailedError if it failed
    solver.get_results(job_id)               # {'output_1': PosixPath('.../single_number.txt'), ...}
    results = solver.map([{...}, {...}], max_concurrency=8)   # many jobs, results in order
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path, PurePosixPath, PureWindowsPath
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import quote

from sparc.client.errors import ArgumentError, ConflictError, SparcError, UnsafePathError
from sparc.client.progress import step_bar
from sparc.client.services.o2sparc._osparc import Session, translated
from sparc.client.services.o2sparc.errors import (
    FanOutError,
    InvalidJobInputError,
    JobFailedError,
    JobNotDoneError,
    JobTimeoutError,
    UnexpectedResponseError,
)
from sparc.client.services.o2sparc.models import FAILED_STATES, Job, JobStatus, Port, SolverInfo

__all__ = ["O2SparcSolver", "POLL_MIN", "POLL_MAX", "POLL_GROWTH", "LOG_TAIL_LINES"]

log = logging.getLogger("sparc.client")

#: Poll loops wait POLL_MIN seconds first, then POLL_GROWTH times longer each time, up to POLL_MAX.
POLL_MIN = 0.2
POLL_MAX = 2.0
POLL_GROWTH = 1.5
#: Lines of the job's log quoted in a JobFailedError.
LOG_TAIL_LINES = 20
#: Page size when listing jobs.
PAGE_SIZE = 50
#: The most a job's log archive may unpack to (a zip bomb stops here).
MAX_LOG_BYTES = 1 << 30


class O2SparcSolver:
    """A solver (computational service) release, to which jobs can be submitted.

    Made by :meth:`O2SparcService.get_solver`; ``O2SparcSolver(api_client, key, version)``
    with an ``osparc.ApiClient`` also works, as in sparc.client 0.x.
    """

    def __init__(self, api_client: Any, solver_key: str, solver_version: str | None = None
                 ) -> None:
        from sparc.client.services.o2sparc.service import O2SparcService

        key = checked_solver_key(solver_key)
        if solver_version is not None and (not isinstance(solver_version, str)
                                           or not solver_version.strip()):
            raise ArgumentError(f"solver_version must be a version such as '2.0.2', "
                                f"got {solver_version!r}")
        if isinstance(api_client, O2SparcService):
            session = api_client.session
        elif isinstance(api_client, Session):
            session = api_client
        else:
            session = Session.from_api_client(api_client)
        self._session = session
        api = session.solvers
        if solver_version is None:
            model = session.call("GET", f"/v0/solvers/{quote(key, safe='')}/latest",
                                 api.get_solver, key)
        else:
            model = session.call(
                "GET", f"/v0/solvers/{quote(key, safe='')}/releases/{solver_version.strip()}",
                api.get_solver_release, key, solver_version.strip())
        self.info = SolverInfo.from_api(model)
        self._solver = model
        self._ports: list[Port] | None = None
        self._ports_lock = threading.Lock()

    # -- identity -----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        return self.info.key

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def _path(self) -> str:
        return f"/v0/solvers/{quote(self.key, safe='')}/releases/{self.version}"

    def _call(self, method: str, suffix: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        return self._session.call(method, self._path + suffix, func, self.key, self.version,
                                  *args, **kwargs)

    def __repr__(self) -> str:
        return f"<O2SparcSolver {self.key} {self.version}>"

    # -- ports and inputs ---------------------------------------------------------------------
    @property
    def ports(self) -> list[Port]:
        """Every input and output port (fetched once)."""
        with self._ports_lock:
            if self._ports is None:
                items = self._call("GET", "/ports", self._session.solvers.list_solver_ports)
                self._ports = [Port.from_api(item) for item in items or []]
            return list(self._ports)

    @property
    def input_ports(self) -> list[Port]:
        return [p for p in self.ports if p.kind == "input"]

    @property
    def output_ports(self) -> list[Port]:
        return [p for p in self.ports if p.kind == "output"]

    def validate_inputs(self, job_inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs as they will be sent, or :class:`InvalidJobInputError` naming the input:
        an unknown name, a value of the wrong type or out of range, a missing required input,
        or a path that is not a file. Nothing is uploaded. ``0``/``1`` pass for a boolean port
        (as in production), ``3.0`` for an integer one."""
        if not isinstance(job_inputs, Mapping):
            raise InvalidJobInputError(
                f"job inputs must be a dict of input name -> value (str, int, float, bool or "
                f"pathlib.Path), got {type(job_inputs).__name__}", solver=self.key)
        ports = {p.key: p for p in self.input_ports}
        checked: dict[str, Any] = {}
        for name, value in job_inputs.items():
            if not isinstance(name, str):
                raise InvalidJobInputError(f"input names are strings, got {name!r}",
                                           solver=self.key)
            port = ports.get(name)
            if port is None and ports:
                raise InvalidJobInputError(
                    f"{self.key} {self.version} has no input {name!r}; its inputs are: "
                    f"{', '.join(sorted(ports))}", name=name, solver=self.key)
            converted = _check_value(name, port, value, self.key)
            if converted is not _OMIT:
                checked[name] = converted
        missing = [p.key for p in ports.values() if p.required and p.key not in checked]
        if missing:
            raise InvalidJobInputError(
                f"{self.key} {self.version} needs input{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (no default): "
                + "; ".join(f"{p.key}: {_describe_port(ports[p.key])}"
                            for p in (ports[m] for m in missing)),
                name=missing[0], solver=self.key)
        return checked

    # -- jobs ---------------------------------------------------------------------------------
    def _upload(self, path: Path) -> Any:
        return self._session.upload_file(path)

    def _create(self, checked: Mapping[str, Any], uploaded: dict[Path, Any] | None = None
                ) -> str:
        """Upload the file inputs (those not in ``uploaded`` already) and create the job."""
        osparc = self._session.osparc
        uploaded = {} if uploaded is None else uploaded
        values: dict[str, Any] = {}
        for name, value in checked.items():
            if isinstance(value, Path):
                resolved = value.resolve()
                if resolved not in uploaded:
                    uploaded[resolved] = self._upload(value)
                values[name] = uploaded[resolved]
            else:
                values[name] = value
        job = self._call("POST", "/jobs", self._session.solvers.create_job,
                         osparc.JobInputs(values))
        return str(job.id)

    def create_job(self, job_inputs: Mapping[str, Any]) -> str:
        """Validate the inputs, upload the files, create the job (not started); its id."""
        return self._create(self.validate_inputs(job_inputs))

    def start_job(self, job_id: str) -> JobStatus:
        """Start a created job (starting it again changes nothing)."""
        return JobStatus.from_api(self._call("POST", f"/jobs/{job_id}:start",
                                             self._session.solvers.start_job, _job(job_id)))

    def submit_job(self, job_inputs: Mapping[str, Any]) -> str:
        """Submit a job: inputs are checked against the solver's ports before anything is
        uploaded; file inputs (``pathlib.Path``) are uploaded; the job is created and started.

        Returns the job id (a string). Example::

            job_id = solver.submit_job({"input_1": Path("in.txt"), "input_2": 3.0})
        """
        job_id = self.create_job(job_inputs)
        self.start_job(job_id)
        return job_id

    def get_job_status(self, job_id: str) -> JobStatus:
        """The job's state, progress (0.0-1.0) and times (one request)."""
        return JobStatus.from_api(self._call("POST", f"/jobs/{job_id}:inspect",
                                             self._session.solvers.inspect_job, _job(job_id)))

    def get_job_progress(self, job_id: str) -> float:
        """Progress from 0.0 to 1.0 (1.0: done)."""
        return self.get_job_status(job_id).progress

    def job_done(self, job_id: str) -> bool:
        """True once the job stopped (success, failure or abort)."""
        return self.get_job_status(job_id).done

    def stop_job(self, job_id: str) -> JobStatus:
        """Ask the server to stop the job (it ends ABORTED)."""
        return JobStatus.from_api(self._call("POST", f"/jobs/{job_id}:stop",
                                             self._session.solvers.stop_job, _job(job_id)))

    def delete_job(self, job_id: str) -> None:
        """Delete the job and its outputs."""
        self._call("DELETE", f"/jobs/{job_id}", self._session.solvers.delete_job, _job(job_id))

    def get_job(self, job_id: str) -> Job:
        """The job's record (id, name, creation time, URLs)."""
        return Job.from_api(self._call("GET", f"/jobs/{job_id}", self._session.solvers.get_job,
                                       _job(job_id)))

    def list_jobs(self, limit: int | None = None) -> list[Job]:
        """This solver release's jobs (all of them, or the first ``limit``)."""
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 0):
            raise ArgumentError(f"limit must be a whole number >= 0, got {limit!r}")
        jobs: list[Job] = []
        offset = 0
        while limit is None or len(jobs) < limit:
            size = PAGE_SIZE if limit is None else max(1, min(PAGE_SIZE, limit - len(jobs)))
            page = self._call("GET", f"/jobs/page?limit={size}&offset={offset}",
                              self._session.solvers.list_jobs_paginated, limit=size,
                              offset=offset)
            items = list(page.items or [])
            jobs.extend(Job.from_api(item) for item in items)
            offset += len(items)
            if not items or page.total is None or offset >= page.total:
                break
        return jobs if limit is None else jobs[:limit]

    # -- results and logs ---------------------------------------------------------------------
    def get_results(self, job_id: str, output_dir: str | os.PathLike[str] | None = None
                    ) -> dict[str, Any]:
        """The job's outputs: files downloaded (``pathlib.Path``, into ``output_dir`` or a new
        temporary folder), other values as they are.

        Raises :class:`JobNotDoneError` while the job runs and :class:`JobFailedError` if it
        failed."""
        try:
            outputs = self._call("GET", f"/jobs/{job_id}/outputs",
                                 self._session.solvers.get_job_outputs, _job(job_id))
        except ConflictError as exc:
            status = self.get_job_status(job_id)
            if status.state in FAILED_STATES:
                raise self._failure(status) from exc
            if status.done:
                raise
            raise JobNotDoneError(
                f"job {job_id} is not done yet (state {status.state}, "
                f"{status.progress:.0%}): wait for it with solver.wait(job_id)",
                status=exc.status, method=exc.method, url=exc.url, service=exc.service,
                server_message=exc.server_message, body=exc.body) from exc
        osparc = self._session.osparc
        results: dict[str, Any] = {}
        folder: Path | None = None
        used: set[str] = set()
        for name, value in (outputs.results or {}).items():
            if isinstance(value, osparc.File):
                if folder is None:
                    folder = _output_folder(output_dir)
                results[name] = self._download(value, folder, name, used)
            else:
                results[name] = value
        return results

    def _download(self, file: Any, folder: Path, output_name: str, used: set[str]) -> Path:
        name = _output_file_name(str(file.filename or ""), output_name, used)
        session = self._session
        url = f"{session.settings.host}/v0/files/{quote(str(file.id), safe='')}/content"
        target = folder / name
        if session.http is None:  # a solver made from a bare osparc.ApiClient
            with translated("GET", url):
                tmp = session.files.download_file(
                    file_id=str(file.id), destination_folder=folder,
                    timeout_seconds=session.transfer_timeout)
            os.replace(tmp, target)
            return target
        # The client's pooled HTTP core: one request (307 to storage, followed), credentials
        # only for the API host, retries before the body, a temporary name until complete.
        # (osparc's download_file builds a new async client, TLS context included, per file.)
        import httpx

        auth = httpx.BasicAuth(session.settings.username or "", session.settings.password or "")
        tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.incomplete"
        try:
            with session.http.stream("GET", url, service="o2sparc", auth=auth) as response, \
                    tmp.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def _logfile(self, job_id: str) -> Path:
        path = self._call("GET", f"/jobs/{job_id}/outputs/logfile",
                          self._session.solvers.get_job_output_logfile, _job(job_id))
        return Path(path)

    def download_job_log(self, job_id: str, output_dir: str | os.PathLike[str]) -> list[Path]:
        """Extract the job's log files into ``output_dir``; the paths written."""
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        archive = self._logfile(job_id)
        try:
            return _extract(archive, folder, job_id)
        finally:
            archive.unlink(missing_ok=True)

    def get_job_log(self, job_id: str) -> TemporaryDirectory[str]:
        """The job's log files, extracted into a ``tempfile.TemporaryDirectory`` (its ``.name``
        is the folder; it is removed when the object is cleaned up). Available once the job
        has finished (``NotFoundError`` before)."""
        tmp_dir: TemporaryDirectory[str] = TemporaryDirectory(prefix="o2sparc-log-")
        try:
            self.download_job_log(job_id, tmp_dir.name)
        except BaseException:
            tmp_dir.cleanup()
            raise
        return tmp_dir

    def get_job_log_text(self, job_id: str) -> str:
        """The job's log as text (every log file, in name order)."""
        with TemporaryDirectory(prefix="o2sparc-log-") as folder:
            paths = sorted(self.download_job_log(job_id, folder))
            return "".join(p.read_text(encoding="utf-8", errors="replace") for p in paths)

    def _failure(self, status: JobStatus) -> JobFailedError:
        tail: str | None = None
        try:
            lines = self.get_job_log_text(status.job_id).splitlines()
            tail = "\n".join(lines[-LOG_TAIL_LINES:])
        except SparcError as exc:
            log.info("o2sparc: no log for failed job %s: %s", status.job_id, exc)
        detail = "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e)
                           for e in status.errors)
        message = f"job {status.job_id} of {self.key} {self.version} ended {status.state}"
        if detail:
            message += f": {detail}"
        elif tail and tail.strip():
            lines = [line.strip() for line in tail.splitlines() if line.strip()]
            errors = [line for line in lines if "error" in line.lower()]
            message += f" (log: {(errors or lines)[-1]!r})"
        return JobFailedError(message, job_id=status.job_id, state=status.state,
                              errors=status.errors, log_tail=tail)

    # -- waiting ------------------------------------------------------------------------------
    def _poll(self, job_id: str, timeout: float | None,
              on_progress: Callable[[JobStatus], None] | None = None,
              stop: threading.Event | None = None, deadline: float | None = None) -> JobStatus:
        """Inspect the job until it stops, sleeping between polls (never spinning)."""
        if deadline is None and timeout is not None:
            deadline = time.monotonic() + timeout
        delay = POLL_MIN
        while True:
            status = self.get_job_status(job_id)
            if on_progress is not None:
                on_progress(status)
            if status.done:
                return status
            if status.state == "NOT_STARTED":
                raise JobNotDoneError(f"job {job_id} was created but never started: "
                                      "call solver.start_job(job_id) first", status=409,
                                      service="o2sparc")
            pause = delay
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JobTimeoutError(
                        f"job {job_id} is still {status.state} ({status.progress:.0%}) after "
                        f"the timeout; it keeps running: wait again, or solver.stop_job(job_id)",
                        job_id=job_id, state=status.state, progress=status.progress)
                pause = min(pause, max(left, 0.01))
            if stop is not None:
                if stop.wait(pause):
                    raise KeyboardInterrupt
            else:
                time.sleep(pause)
            delay = min(POLL_MAX, delay * POLL_GROWTH)

    def wait(self, job_id: str, timeout: float | None = None, progress: bool = True
             ) -> JobStatus:
        """Wait until the job stops; its final status.

        Shows a progress bar (stderr) unless ``progress=False``. Raises
        :class:`JobFailedError` (state and log tail) if the job failed or was aborted, and
        :class:`JobTimeoutError` after ``timeout`` seconds (the job keeps running)."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or math.isnan(timeout) or timeout < 0):
            raise ArgumentError(f"timeout must be seconds >= 0 or None, got {timeout!r}")
        bar = step_bar(100, f"{_short_key(self.key)} {job_id[:8]}", progress, unit="%", leave=True)
        try:
            def show(status: JobStatus) -> None:
                bar.n = round(status.progress * 100)
                bar.set_postfix_str(status.state, refresh=False)
                bar.refresh()

            status = self._poll(job_id, timeout, show)
        finally:
            bar.close()
        if status.state in FAILED_STATES:
            raise self._failure(status)
        return status

    def run(self, job_inputs: Mapping[str, Any], *, timeout: float | None = None,
            progress: bool = True, output_dir: str | os.PathLike[str] | None = None
            ) -> dict[str, Any]:
        """Submit one job, wait for it, return its results (see :meth:`get_results`)."""
        job_id = self.submit_job(job_inputs)
        self.wait(job_id, timeout=timeout, progress=progress)
        return self.get_results(job_id, output_dir=output_dir)

    def map(self, inputs: Iterable[Mapping[str, Any]], max_concurrency: int = 4, *,
            timeout: float | None = None, progress: bool = True,
            output_dir: str | os.PathLike[str] | None = None,
            return_exceptions: bool = False) -> list[Any]:
        """Run one job per input set, at most ``max_concurrency`` at a time, with one combined
        progress bar; the results (as :meth:`get_results`) in input order.

        Every input set is validated before anything is uploaded. With ``output_dir``, job
        ``i``'s files go to ``output_dir/i/``. ``timeout`` bounds the whole run. If jobs fail,
        :class:`FanOutError` (``.failures``, ``.results``) is raised once all have ended,
        unless ``return_exceptions=True`` (the errors then stand in the list). Example::

            results = solver.map([{"input_1": f, "input_2": 1} for f in files], 8)
        """
        items = list(inputs)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) \
                or max_concurrency < 1:
            raise ArgumentError(f"max_concurrency must be a whole number >= 1, got "
                                f"{max_concurrency!r}")
        checked: list[dict[str, Any]] = []
        for index, job_inputs in enumerate(items):
            try:
                checked.append(self.validate_inputs(job_inputs))
            except InvalidJobInputError as exc:
                raise InvalidJobInputError(f"inputs[{index}]: {exc}", name=exc.name,
                                           solver=exc.solver) from exc
        count = len(checked)
        if count == 0:
            return []
        deadline = time.monotonic() + timeout if timeout is not None else None
        fractions = [0.0] * count
        finished = [False] * count
        lock = threading.Lock()
        stop = threading.Event()
        bar = step_bar(count, f"{_short_key(self.key)} x{count}", progress, unit="job", leave=True,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")
        bar.set_postfix_str(f"0/{count} done", refresh=True)

        def report(index: int, status: JobStatus) -> None:
            with lock:
                fractions[index] = 1.0 if status.done else status.progress
                finished[index] = status.done
                bar.n = round(sum(fractions), 3)
                bar.set_postfix_str(f"{sum(finished)}/{count} done", refresh=False)
                bar.refresh()

        def one(index: int) -> dict[str, Any]:
            if stop.is_set():
                raise KeyboardInterrupt
            job_id = self._create(checked[index], uploads)
            with lock:
                created[index] = job_id
            self.start_job(job_id)
            status = self._poll(job_id, None, lambda s: report(index, s), stop, deadline)
            if status.state in FAILED_STATES:
                raise self._failure(status)
            folder = Path(output_dir) / str(index) if output_dir is not None else None
            return self.get_results(job_id, output_dir=folder)

        results: list[Any] = [None] * count
        failures: dict[int, BaseException] = {}
        created: dict[int, str] = {}
        pool = ThreadPoolExecutor(max_workers=min(max_concurrency, count),
                                  thread_name_prefix="o2sparc-map")
        # each distinct input file is uploaded once, before any job is created
        files = {value.resolve(): value for inputs_ in checked for value in inputs_.values()
                 if isinstance(value, Path)}
        uploads: dict[Path, Any] = {}
        try:
            for resolved, future in [(r, pool.submit(self._upload, p)) for r, p in files.items()]:
                uploads[resolved] = future.result()
            pending: dict[Future[dict[str, Any]], int] = {
                pool.submit(one, index): index for index in range(count)}
            while pending:
                done, _ = wait_futures(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    error = future.exception()
                    if error is None:
                        results[index] = future.result()
                    elif isinstance(error, Exception):
                        failures[index] = error
                        results[index] = error if return_exceptions else None
                    else:
                        raise error
        except BaseException:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            running = [job for i, job in sorted(created.items()) if i not in failures
                       and results[i] is None]
            if running:
                log.warning("o2sparc: map interrupted; %d job(s) may still run on the server "
                            "(solver.stop_job(job_id) stops one): %s", len(running),
                            ", ".join(running))
            raise
        finally:
            pool.shutdown(wait=True)
            bar.close()
        if failures and not return_exceptions:
            first = min(failures)
            more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
            raise FanOutError(f"{len(failures)} of {count} jobs failed; inputs[{first}]: "
                              f"{failures[first]}{more}", failures=failures, results=results)
        return results


# -- helpers ----------------------------------------------------------------------------------
class _Omit:
    def __repr__(self) -> str:
        return "<omitted>"


_OMIT: Any = _Omit()
_TYPE_WORDS = {"integer": "a whole number", "number": "a number", "boolean": "a boolean",
               "string": "a string or a pathlib.Path to a file", "array": "a list",
               "object": "a dict"}


def checked_solver_key(solver_key: str) -> str:
    """``solver_key`` stripped, or :class:`ArgumentError` if it is not a non-empty string."""
    if not isinstance(solver_key, str) or not solver_key.strip():
        raise ArgumentError(f"solver_key must be a solver key such as "
                            f"'simcore/services/comp/itis/sleeper', got {solver_key!r}")
    return solver_key.strip()


def _job(job_id: str) -> str:
    """``job_id`` checked: a UUID string, as :meth:`O2SparcSolver.submit_job` returns."""
    try:
        return str(uuid.UUID(job_id.strip()))
    except (AttributeError, TypeError, ValueError):
        raise ArgumentError(f"job_id must be a job id (a UUID string, as submit_job "
                            f"returns), got {job_id!r}") from None


def _describe_port(port: Port) -> str:
    words = _TYPE_WORDS.get(port.type or "", port.type or "any value")
    return f"{words}{f' ({port.title})' if port.title else ''}"


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:59] + '…'}"


def _check_value(name: str, port: Port | None, value: Any, solver: str) -> Any:
    """The value to send for input ``name``, or :class:`InvalidJobInputError`."""
    def bad(why: str) -> InvalidJobInputError:
        return InvalidJobInputError(f"input {name!r}: {why}", name=name, solver=solver)

    kind = port.type if port is not None else None
    if value is None:
        if port is not None and port.required:
            raise bad(f"is required ({_describe_port(port)}), got None")
        return _OMIT if port is not None else None
    if isinstance(value, os.PathLike):
        if kind not in (None, "string"):
            raise bad(f"expects {_TYPE_WORDS.get(kind, kind)}, got the path {os.fspath(value)!r}")
        path = Path(os.fspath(value))
        if not path.exists():
            raise bad(f"file {str(path)!r} does not exist")
        if not path.is_file():
            raise bad(f"{str(path)!r} is not a file")
        if not os.access(path, os.R_OK):
            raise bad(f"file {str(path)!r} cannot be read (permission denied)")
        return path
    if kind == "boolean":
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return value
        raise bad(f"expects a boolean (True/False, or 0/1), got {_got(value)}")
    if kind == "integer":
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"expects a whole number, got {_got(value)}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad(f"expects a number, got {_got(value)}")
        if not math.isfinite(value):
            raise bad(f"expects a finite number, got {value!r}")
    elif kind == "string":
        if not isinstance(value, str):
            raise bad(f"expects a string (or a pathlib.Path to a file), got {_got(value)}")
    elif kind == "array":
        if not isinstance(value, (list, tuple)):
            raise bad(f"expects a list, got {_got(value)}")
        value = list(value)
    elif kind == "object":
        if not isinstance(value, Mapping):
            raise bad(f"expects a dict, got {_got(value)}")
        value = dict(value)
    elif not isinstance(value, (str, int, float, bool, list, tuple)):
        raise bad(f"expects a str, int, float, bool, list or pathlib.Path, got {_got(value)}")
    schema = port.schema if port is not None else None
    if schema and isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, ok, words in (("minimum", lambda v, b: v >= b, ">="),
                               ("maximum", lambda v, b: v <= b, "<="),
                               ("exclusiveMinimum", lambda v, b: v > b, ">"),
                               ("exclusiveMaximum", lambda v, b: v < b, "<")):
            bound = schema.get(key)
            if isinstance(bound, (int, float)) and not isinstance(bound, bool) \
                    and not ok(value, bound):
                raise bad(f"must be {words} {bound}, got {value!r}")
    if schema and isinstance(schema.get("enum"), list) and value not in schema["enum"]:
        raise bad(f"must be one of {schema['enum']!r}, got {value!r}")
    return value


def _short_key(key: str) -> str:
    return key.rstrip("/").rsplit("/", 1)[-1]


def _output_folder(output_dir: str | os.PathLike[str] | None) -> Path:
    if output_dir is None:
        return Path(tempfile.mkdtemp(prefix="o2sparc-outputs-"))
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _safe_name(name: str, fallback: str) -> str:
    """A plain file name from a server-given one (no folders, no ``..``)."""
    base = PureWindowsPath(PurePosixPath(name.replace("\\", "/")).name).name
    base = base.strip().strip("\x00")
    if base in ("", ".", "..") or any(c in base for c in "\x00/\\:"):
        base = _safe_name(fallback, "output") if fallback != name else "output"
    return base


def _output_file_name(filename: str, output_name: str, used: set[str]) -> str:
    """The name an output file is saved under: a plain name (see :func:`_safe_name`) not in
    ``used`` (two outputs with one file name: ``<output>_<name>``, then ``_2``...); added to
    ``used``. The server's names are never taken as paths."""
    name = _safe_name(filename, fallback=output_name)
    if name in used:
        base = _safe_name(f"{output_name}_{name}", fallback="output")
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
    used.add(name)
    return name


#: The file-type bits of a zip member's Unix mode (``external_attr >> 16``).
_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, 0o100000, 0o040000


def _member_parts(member: zipfile.ZipInfo) -> tuple[str, ...]:
    """The path parts of a zip member, or :class:`UnsafePathError` for one that could land
    outside the folder (absolute, a drive, ``..``) or is not a plain file or folder (a symlink,
    a device...)."""
    name = member.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (not parts or name.startswith(("/", "\\")) or ".." in parts
            or PureWindowsPath(name).drive or any("\x00" in p for p in parts)):
        raise UnsafePathError(name, "escapes the log folder")
    kind = (member.external_attr >> 16) & _S_IFMT
    if kind not in (0, _S_IFREG, _S_IFDIR):
        raise UnsafePathError(name, "is a link or special file in the log archive")
    return parts


def _extract(archive: Path, folder: Path, job_id: str) -> list[Path]:
    """Extract a logs zip into ``folder``: every member is checked before anything is written
    (see :func:`_member_parts`); a path through a link in ``folder`` is refused too."""
    if not zipfile.is_zipfile(archive):
        raise UnexpectedResponseError(f"the log of job {job_id} is not a zip archive")
    root = folder.resolve()
    written: list[Path] = []
    total = 0
    with zipfile.ZipFile(archive) as zf:
        members = [(member, _member_parts(member)) for member in zf.infolist()]
        for member, parts in members:
            target = root.joinpath(*parts)
            if target.is_symlink() or not target.resolve().is_relative_to(root):
                raise UnsafePathError(member.filename, "escapes the log folder")
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as src, target.open("wb") as dst:
                    while chunk := src.read(1 << 20):
                        total += len(chunk)
                        if total > MAX_LOG_BYTES:
                            raise UnexpectedResponseError(
                                f"the log of job {job_id} unpacks to more than "
                                f"{MAX_LOG_BYTES >> 20} MiB; refusing to fill the disk")
                        dst.write(chunk)
            except BaseException:
                target.unlink(missing_ok=True)  # no partial file left behind
                raise
            written.append(target)
    return written
