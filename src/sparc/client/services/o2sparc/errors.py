"""Errors of the o²S²PARC service, all under :class:`sparc.client.errors.SparcError`.

::

    O2SparcError (SparcError)
    ├── O2SparcNotInstalledError (ImportError)   the ``o2sparc`` extra (osparc) is missing
    ├── InvalidJobInputError (ArgumentError)     a job input does not fit the solver's ports
    ├── UnexpectedResponseError                  an answer the o²S²PARC API does not define
    ├── JobFailedError                           the job ended FAILED or ABORTED (``.state``, ``.log_tail``)
    ├── JobNotDoneError (ConflictError)          outputs asked for before the job finished
    ├── JobTimeoutError (TimeoutError)           ``wait(timeout=...)`` ran out; the job still runs
    └── FanOutError                              some jobs of ``solver.map`` failed (``.failures``)

HTTP answers map to the shared tree (``NotFoundError``, ``AuthenticationError``,
``RateLimitedError``, ``ServerError``, ``TransportError``...) in ONE place,
:func:`sparc.client.services.o2sparc._osparc.translated`. Example::

    from sparc.client.services.o2sparc import JobFailedError

    try:
        solver.wait(job_id)
    except JobFailedError as err:
        print(err.state, err.log_tail)
"""

from __future__ import annotations

from typing import Any

from sparc.client.errors import ArgumentError, ConflictError, SparcError

__all__ = [
    "O2SparcError",
    "O2SparcNotInstalledError",
    "InvalidJobInputError",
    "UnexpectedResponseError",
    "JobFailedError",
    "JobNotDoneError",
    "JobTimeoutError",
    "FanOutError",
    "INSTALL_HINT",
]

#: The command that installs what the o²S²PARC service needs.
INSTALL_HINT = "pip install 'sparc.client[o2sparc]'"


class O2SparcError(SparcError):
    """Base of the errors only the o²S²PARC service raises."""


class O2SparcNotInstalledError(O2SparcError, ImportError):
    """The official ``osparc`` client (the ``o2sparc`` extra) is not installed."""

    def __init__(self, detail: str = "") -> None:
        why = f" ({detail})" if detail else ""
        super().__init__(f"the o²S²PARC service needs the osparc package, which is not "
                         f"installed{why}; install it with: {INSTALL_HINT}")


class InvalidJobInputError(O2SparcError, ArgumentError):
    """A job input is unknown, of the wrong type, out of range, missing, or a path that is
    not a file; ``name`` is the input (port) concerned. Nothing was uploaded or created."""

    def __init__(self, message: str, *, name: str = "", solver: str = "") -> None:
        super().__init__(message)
        self.name = name
        self.solver = solver


class UnexpectedResponseError(O2SparcError):
    """The server answered something the o²S²PARC API does not define (e.g. an unknown job
    state): not an error status, but an answer the official client cannot read."""


class JobFailedError(O2SparcError):
    """A job ended without success: ``state`` is ``FAILED`` or ``ABORTED``; ``errors`` are the
    server's error entries and ``log_tail`` the last lines of the job's log (when available)."""

    def __init__(self, message: str, *, job_id: str, state: str,
                 errors: list[Any] | None = None, log_tail: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.state = state
        self.errors = errors or []
        self.log_tail = log_tail


class JobNotDoneError(O2SparcError, ConflictError):
    """The job's outputs were asked for before it finished (the server answers 409)."""


class JobTimeoutError(O2SparcError, TimeoutError):
    """``wait(job_id, timeout=...)`` ran out of time. The job keeps running on the server:
    wait again, or ``stop_job(job_id)``."""

    def __init__(self, message: str, *, job_id: str, state: str, progress: float) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.state = state
        self.progress = progress


class FanOutError(O2SparcError):
    """Some jobs of ``solver.map(...)`` failed. ``failures`` maps each failed input's index to
    its error; ``results`` holds every result in input order (``None`` where it failed)."""

    def __init__(self, message: str, *, failures: dict[int, BaseException],
                 results: list[Any]) -> None:
        super().__init__(message)
        self.failures = failures
        self.results = results
