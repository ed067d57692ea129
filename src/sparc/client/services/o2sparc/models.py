"""Plain, frozen views of what the o²S²PARC API returns (``raw`` keeps the whole answer).

Example::

    solver = client.o2sparc.get_solver("simcore/services/comp/itis/sleeper", "2.0.2")
    [p.key for p in solver.input_ports]          # ['input_1', 'input_2', ...]
    status = solver.get_job_status(job_id)
    status.state, status.progress, status.done   # 'STARTED', 0.4, False
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["SolverInfo", "Port", "JobStatus", "Job", "TERMINAL_STATES", "FAILED_STATES"]

#: States after which a job never changes again.
TERMINAL_STATES = frozenset({"SUCCESS", "FAILED", "ABORTED"})
#: Terminal states without results.
FAILED_STATES = frozenset({"FAILED", "ABORTED"})


def _to_dict(model: Any) -> dict[str, Any]:
    if isinstance(model, dict):
        return model
    if hasattr(model, "to_dict"):
        return dict(model.to_dict())
    return dict(model.model_dump())


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class _Record:
    """``as_dict()``: a dataclass's fields but ``raw`` (what ``--json`` prints)."""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "raw"}  # type: ignore[call-overload]


@dataclass(frozen=True)
class SolverInfo(_Record):
    """One release of a solver (a computational service)."""

    key: str
    version: str
    title: str
    description: str | None
    maintainer: str | None
    url: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, model: Any) -> SolverInfo:
        d = _to_dict(model)
        return cls(key=str(d["id"]), version=str(d["version"]), title=str(d.get("title") or ""),
                   description=d.get("description"), maintainer=d.get("maintainer"),
                   url=_text(d.get("url")), raw=d)


@dataclass(frozen=True)
class Port:
    """An input or output of a solver: its name (``key``), ``kind`` and JSON schema.

    ``type`` is the schema's type (``integer``, ``number``, ``boolean``, ``string``,
    ``array``...); a file port is a ``string`` port (the API does not tell them apart).
    ``required`` is true for a file-like input (a ``string`` port whose schema gives no
    ``default``): the api-server drops the catalogue's defaults of ``ref_contentSchema`` ports
    (the sleeper's ``input_2``), so a number without a default may still be optional, and it
    is not flagged (validation never refuses what production accepts).
    """

    key: str
    kind: str
    schema: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, model: Any) -> Port:
        d = _to_dict(model)
        schema = d.get("content_schema")
        return cls(key=str(d["key"]), kind=str(d["kind"]),
                   schema=dict(schema) if isinstance(schema, dict) else None, raw=d)

    @property
    def type(self) -> str | None:
        value = (self.schema or {}).get("type")
        return value if isinstance(value, str) else None

    @property
    def title(self) -> str | None:
        return (self.schema or {}).get("title")

    @property
    def required(self) -> bool:
        schema = self.schema or {}
        return self.kind == "input" and self.type == "string" and "default" not in schema

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "type": self.type, "title": self.title,
                "required": self.required, "schema": self.schema}


@dataclass(frozen=True)
class JobStatus(_Record):
    """Where a job is: ``state`` (``NOT_STARTED``, ``PUBLISHED``, ``PENDING``, ``STARTED``,
    ``SUCCESS``, ``FAILED``, ``ABORTED``...), ``progress`` from 0.0 to 1.0 and its times."""

    job_id: str
    state: str
    progress: float
    submitted_at: str | None
    started_at: str | None
    stopped_at: str | None
    errors: list[Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, model: Any) -> JobStatus:
        d = _to_dict(model)
        state = d.get("state")
        state = getattr(state, "value", state)
        progress = d.get("progress") or 0
        return cls(job_id=str(d["job_id"]), state=str(state),
                   progress=min(1.0, max(0.0, float(progress) / 100)),
                   submitted_at=_text(d.get("submitted_at")),
                   started_at=_text(d.get("started_at")), stopped_at=_text(d.get("stopped_at")),
                   errors=list(d.get("errors") or []), raw=d)

    @property
    def done(self) -> bool:
        """True once the job stopped (``stopped_at`` is set, or a terminal state)."""
        return self.stopped_at is not None or self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCESS"


@dataclass(frozen=True)
class Job(_Record):
    """A job of a solver (created, maybe started)."""

    id: str
    name: str
    created_at: str | None
    inputs_checksum: str | None
    url: str | None
    outputs_url: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, model: Any) -> Job:
        d = _to_dict(model)
        return cls(id=str(d["id"]), name=str(d.get("name") or ""),
                   created_at=_text(d.get("created_at")),
                   inputs_checksum=d.get("inputs_checksum"), url=_text(d.get("url")),
                   outputs_url=_text(d.get("outputs_url")), raw=d)
