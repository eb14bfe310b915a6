"""JSON and JSON Lines (NDJSON) files as records of `key.path: value` lines, one page.

A record is one block of lines (a paragraph to the chunker, which prefers to end chunks between
blocks and cuts a record too big for a chunk at line ends), nested objects flattened with dots
and arrays with indices (`items[0].sku: XK-4471`), its first line marked so citations say
"record 12". What a record is:
- JSON Lines: each line, numbered by its line in the file. A few bad lines are skipped with a
  notice; a file of mostly bad lines fails (unless it is one JSON document, pretty-printed).
- JSON: the elements of a top-level array; for a top-level object that mostly is one array of
  objects (`{"data": [...], "page": 2}`), that array's elements, with the object's other keys
  as a header before them; for any other object, each top-level key with everything under it;
  a lone value is one record. A .json file of several values one per line reads as JSON Lines.

Invalid JSON fails with its line and column (never its content); nesting too deep for the
parser (a depth bomb) fails as a permanent error, and flattening itself is iterative. Records
past `max_rows` are left out with a notice.
"""

from __future__ import annotations

import json
from typing import Any

from common.ingestion.extractors.base import (
    ExtractOptions,
    PageUnit,
    RawDocument,
    RowUnit,
)
from common.ingestion.extractors.layout import PageBuilder
from common.ingestion.extractors.text import decode_text
from common.platform.errors import PermanentIngestionError
from common.platform.formats import BY_KIND, Kind

Record = tuple[int, Any]


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """The records of a JSON or JSON Lines file, one page (see the module docstring)."""
    kind = Kind.JSONL if options.kind is Kind.JSONL else Kind.JSON
    label = BY_KIND[kind].noun
    source = decode_text(data, declared_charset=options.charset)
    notices: list[str] = []
    header: dict[str, Any] = {}
    if kind is Kind.JSONL:
        records = _json_lines(source, label, notices)
    else:
        records, header = _json_document(source, label)
    builder = PageBuilder()
    if header:
        builder.lines((None, line) for line in flatten(header))
    for count, (number, value) in enumerate(records):
        if count == options.max_rows:
            notices.append(
                f"only the first {options.max_rows} records of the {label} were read; "
                "the records after them were left out"
            )
            break
        lines = flatten(value)
        builder.lines((number if index == 0 else None, line) for index, line in enumerate(lines))
    return RawDocument(
        [builder.build()],
        unit=PageUnit.PAGE,
        row_unit=RowUnit.RECORD,
        notices=notices,
        empty_message=f"no records in the {label}",
    )


def _json_document(source: str, label: str) -> tuple[list[Record], dict[str, Any]]:
    """The records of a JSON document and the header keys beside them (see the docstring)."""
    try:
        document = _parse(source, label)
    except _InvalidJsonError as invalid:
        if invalid.reason == "Extra data":  # several documents: maybe JSON Lines
            notices: list[str] = []
            records = _json_lines(source, label, notices)
            if not notices:
                return records, {}
        raise PermanentIngestionError(invalid.message) from None
    if isinstance(document, list):
        return list(enumerate(document, start=1)), {}
    if not isinstance(document, dict):
        return [(1, document)], {}
    key = _main_array(document)
    if key is None:
        return [(n, {k: v}) for n, (k, v) in enumerate(document.items(), start=1)], {}
    header = {k: v for k, v in document.items() if k != key}
    return list(enumerate(document[key], start=1)), header


def _main_array(document: dict[str, Any]) -> str | None:
    """The key of an array of objects holding most of the object, if there is one."""
    sizes = {key: _size(value) for key, value in document.items()}
    total = sum(sizes.values())
    arrays = [
        key
        for key, value in document.items()
        if isinstance(value, list)
        and value
        and 2 * sum(isinstance(element, dict) for element in value) >= len(value)
    ]
    key = max(arrays, key=sizes.__getitem__, default=None)
    return key if key is not None and 2 * sizes[key] >= total else None


def _size(value: Any) -> int:
    """How many values `value` holds, itself included (iterative: no recursion limit)."""
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _json_lines(source: str, label: str, notices: list[str]) -> list[Record]:
    records: list[Record] = []
    bad: list[tuple[int, _InvalidJsonError]] = []
    for number, line in enumerate(source.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, _parse(line, label)))
        except _InvalidJsonError as invalid:
            bad.append((number, invalid))
    if not bad:
        return records
    if len(bad) > len(records):
        try:  # one pretty-printed document in a .jsonl file
            return _json_document(source, BY_KIND[Kind.JSON].noun)[0]
        except PermanentIngestionError:
            first, error = bad[0]
            raise PermanentIngestionError(
                f"the {label} is not valid JSON Lines: {len(bad)} of "
                f"{len(bad) + len(records)} lines are not JSON (line {first}: {error.reason})"
            ) from None
    if len(bad) == 1:
        notices.append(f"line {bad[0][0]} of the {label} is not valid JSON and was skipped")
    else:
        notices.append(
            f"{len(bad)} lines of the {label} are not valid JSON and were skipped "
            f"(the first is line {bad[0][0]})"
        )
    return records


class _InvalidJsonError(Exception):
    """A parse failure: its reason, and the message to show (line and column, never content)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _parse(source: str, label: str) -> Any:
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise _InvalidJsonError(
            exc.msg, f"the {label} is not valid JSON: {exc.msg} ({where})"
        ) from exc
    except RecursionError as exc:  # a depth bomb: deeper than the parser's recursion limit
        raise _InvalidJsonError(
            "nested too deeply", f"the {label} is nested too deeply to read"
        ) from exc
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise _InvalidJsonError(
            "a number too long", f"the {label} holds a number too long to read"
        ) from exc


def flatten(value: Any) -> list[str]:
    """`key.path: value` lines of a value, depth first in document order (iterative)."""
    lines: list[str] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict) and node:
            children = [(f"{path}.{_one_line(key)}" if path else _one_line(key), child)
                        for key, child in node.items()]  # fmt: skip
            stack.extend(reversed(children))
        elif isinstance(node, list) and node:
            stack.extend(reversed([(f"{path}[{i}]", child) for i, child in enumerate(node)]))
        else:
            lines.append(f"{path}: {_scalar(node)}" if path else _scalar(node))
    return lines


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _one_line(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return json.dumps(value)  # true, null, 1e+100, NaN
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return str(value)


def _one_line(text: str) -> str:
    """Line breaks (and tabs) in a key or value become spaces: one line per value."""
    return text if text.isprintable() else " ".join(text.split())
