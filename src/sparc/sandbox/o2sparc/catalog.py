"""The sandbox's solver catalogue: each release with its title, maintainer and ports.

Ports are written as the catalogue's service metadata writes them (``type`` ``data:<media>`` for a
file, ``ref_contentSchema`` with a ``contentSchema``, or a plain ``integer``/``number``/``boolean``/
``string``) and turned into the api-server's ``SolverPort`` (``content_schema``) by
:func:`solver_ports`. The sleeper's ports are those of the real ``simcore/services/comp/itis/sleeper``
(see O2SPARC.md for the sources).

Example: ``find("simcore/services/comp/itis/sleeper", "2.0.2").ports["input_2"]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SOLVER_KEY_RE = re.compile(r"^simcore/services/comp/([a-z0-9][a-z0-9_.-]*/)*([a-z0-9-_]+[a-z0-9])$")
VERSION_RE = re.compile(
    r"^(0|[1-9]\d*)(\.(0|[1-9]\d*)){2}(-(0|[1-9]\d*|\d*[-a-zA-Z][-\da-zA-Z]*)"
    r"(\.(0|[1-9]\d*|\d*[-a-zA-Z][-\da-zA-Z]*))*)?(\+[-\da-zA-Z]+(\.[-\da-zA-Z-]+)*)?$")
SLEEPER = "simcore/services/comp/itis/sleeper"
CSV_STATS = "simcore/services/comp/sparc/csv-stats"

_NO_DEFAULT = object()


@dataclass(frozen=True)
class Port:
    """One input or output port as the catalogue describes it."""

    label: str
    description: str
    type: str  # "data:text/plain", "integer", "number", "boolean", "string", "ref_contentSchema"
    default: Any = _NO_DEFAULT
    content_schema: dict[str, Any] | None = None
    file_name: str | None = None  # fileToKeyMap: the name the service reads/writes

    @property
    def is_file(self) -> bool:
        return self.type.startswith("data:")

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT

    @property
    def value_type(self) -> str:
        """The JSON type of a value (``file`` for a file port)."""
        if self.is_file:
            return "file"
        if self.content_schema is not None:
            return str(self.content_schema.get("type", "string"))
        return self.type

    def schema(self) -> dict[str, Any]:
        """The port's ``content_schema`` as ``GET .../ports`` returns it."""
        if self.content_schema is not None:
            return dict(self.content_schema)
        out: dict[str, Any] = {"title": self.label, "description": self.description,
                               "type": "string" if self.is_file else self.type}
        if not self.required:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class Release:
    """One solver release."""

    key: str
    version: str
    title: str
    description: str
    maintainer: str
    inputs: dict[str, Port]
    outputs: dict[str, Port]
    version_display: str | None = None
    runner: str = "sleeper"  # which function in runner.py runs it
    ports: dict[str, Port] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ports", {**self.inputs, **self.outputs})

    @property
    def name(self) -> str:
        """The last segment of the key (``sleeper``): the log file is ``<name>_<version>.logs``."""
        return self.key.rsplit("/", 1)[-1]

    def sort_key(self) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", self.version.split("-")[0].split("+")[0])[:3])


def _sleeper_inputs(max_sleep: int | None, with_dream: bool) -> dict[str, Port]:
    interval: dict[str, Any] = {"title": "Sleep interval", "type": "integer", "x_unit": "second",
                                "minimum": 0}
    if max_sleep is not None:
        interval["maximum"] = max_sleep
    range_text = f"[0-{max_sleep}]" if max_sleep is not None else "[0:]"
    inputs = {
        "input_1": Port("File with int number", "Pick a file containing only one integer",
                        "data:text/plain", file_name="single_number.txt"),
        "input_2": Port("Sleep interval", f"Choose an amount of time to sleep in range {range_text}",
                        "ref_contentSchema", 2, interval),
        "input_3": Port("Fail after sleep", "If set to true will cause service to fail after it sleeps",
                        "boolean", False),
        "input_4": Port("Distance to bed", "It will first walk the distance to bed",
                        "ref_contentSchema", 0,
                        {"title": "Distance to bed", "type": "integer", "x_unit": "meter"}),
    }
    if with_dream:
        inputs["input_5"] = Port("Dream (or nightmare) of the night",
                                 "Defines the size of the dream that will be generated [0:]",
                                 "integer", 0)
    return inputs


def _sleeper_outputs(with_dream: bool) -> dict[str, Port]:
    outputs = {
        "output_1": Port("File containing one random integer", "Integer is generated in range [1-9]",
                         "data:text/plain", file_name="single_number.txt"),
        "output_2": Port("Random sleep interval", "Interval is generated in range [1-9]",
                         "ref_contentSchema", content_schema={
                             "title": "Random sleep interval", "type": "integer", "x_unit": "second"}),
    }
    if with_dream:
        outputs["output_3"] = Port("Dream output", "Contains some random data representing a dream",
                                   "data:text/plain", file_name="dream.txt")
    return outputs


RELEASES: tuple[Release, ...] = (
    Release(SLEEPER, "2.0.2", "sleeper", "A service which awaits for time to pass.", "info@itis.swiss",
            _sleeper_inputs(65, with_dream=False), _sleeper_outputs(with_dream=False)),
    Release(SLEEPER, "2.1.6", "sleeper", "A service which awaits for time to pass, two times.",
            "info@itis.swiss", _sleeper_inputs(None, with_dream=True), _sleeper_outputs(with_dream=True),
            version_display="2.1.6"),
    Release(CSV_STATS, "1.0.0", "CSV statistics",
            "Summary statistics (count, mean, min, max) of every numeric column of a CSV table.",
            "sandbox@sparc.science",
            {"input_1": Port("CSV table", "A comma-separated table with a header row", "data:text/csv",
                             file_name="table.csv"),
             "input_2": Port("Delimiter", "The column separator", "string", ",")},
            {"output_1": Port("Summary", "One row per numeric column: column,count,mean,min,max",
                              "data:text/csv", file_name="summary.csv"),
             "output_2": Port("Rows", "Number of data rows read", "ref_contentSchema", content_schema={
                 "title": "Rows", "type": "integer", "minimum": 0})},
            runner="csv_stats"),
)


def releases(key: str | None = None) -> list[Release]:
    """Every release (of ``key``), oldest first."""
    return sorted((r for r in RELEASES if key is None or r.key == key), key=lambda r: (r.key, r.sort_key()))


def latest(key: str) -> Release | None:
    found = releases(key)
    return found[-1] if found else None


def find(key: str, version: str) -> Release | None:
    return next((r for r in RELEASES if r.key == key and r.version == version), None)


def solver_ports(release: Release) -> list[dict[str, Any]]:
    """``SolverPort`` items: inputs then outputs, in display order."""
    return [{"key": name, "kind": kind, "content_schema": port.schema()}
            for kind, group in (("input", release.inputs), ("output", release.outputs))
            for name, port in group.items()]
