"""Rendering: rich tables for people, one JSON document on stdout for scripts (`--json`).

Results go to stdout, everything else (warnings, progress) to stderr, so `--json` output pipes
cleanly into `jq`.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from common.cli.context import State

# Wide enough for ids and paths when the output is piped into a file or `grep`.
PIPE_WIDTH = 200


def jsonable(value: Any) -> Any:
    """Plain JSON types for ids, times, enums and paths (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Path):
        return str(value)
    return value


def console(stderr: bool = False) -> Console:
    """A console on the current stdout/stderr (looked up per call, so test runners capture it)."""
    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out = Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return out


def show_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def show(value: Any) -> str:
    """A table cell: times in local time, enums by value, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return show_time(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


Columns = Sequence[tuple[str, str]]


def table(
    records: Sequence[Mapping[str, Any]], columns: Columns, title: str | None = None
) -> Table:
    """A table of `records` showing `columns` as (key, header) pairs."""
    result = Table(title=title, show_edge=False, header_style="bold")
    for _, header in columns:
        result.add_column(header, overflow="fold")
    for record in records:
        result.add_row(*(show(record.get(key)) for key, _ in columns))
    return result


def emit(state: State, data: Any, human: Callable[[Console], None]) -> None:
    """Write the command's result: `data` as JSON, or whatever `human` prints."""
    if state.json:
        typer.echo(json.dumps(jsonable(data), indent=2))
    else:
        human(console())


def emit_records(
    state: State,
    records: Sequence[Mapping[str, Any]],
    columns: Columns,
    *,
    empty: str = "nothing to show",
) -> None:
    def render(out: Console) -> None:
        if records:
            out.print(table(records, columns))
        else:
            out.print(empty)

    emit(state, list(records), render)


def emit_fields(state: State, record: Mapping[str, Any], fields: Columns) -> None:
    """One object: `label: value` lines for people."""

    def render(out: Console) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        for key, label in fields:
            grid.add_row(label, show(record.get(key)))
        out.print(grid)

    emit(state, record, render)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def note(message: str) -> None:
    typer.echo(message, err=True)
