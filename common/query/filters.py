"""The filter language of questions and listings, compiled to one SQL predicate over documents.

A filter is JSON, as in Bedrock Knowledge Bases: a leaf names an attribute and a value
(`{"equals": {"key": "department", "value": "legal"}}`; `in`/`notIn` take a list; `exists`
only a key) and `andAll`/`orAll` (lists) and `not` combine filters. Keys are the project's
attributes (`common.platform.attributes`) or the automatic ones (`path`, `folder`, `file_type`,
`created_at`, `updated_at`, `source_type`). A key no document of the project has is an error
(a typo would otherwise silently match nothing), and so is a value of the wrong type for its
key; every error names the offending part ("filter.andAll[1].greaterThan.value").

The predicate is evaluated on `documents` (alias `d`): retrieval turns it into the matching
documents and their chunk count in its first round trip, so the search plan follows the
filter's selectivity (see `common.query.retrieval`). Semantics: a document without the
attribute fails every comparison, so `notEquals`/`notIn` match it and `not` inverts exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common.platform.attributes import (
    AUTOMATIC_TYPES,
    MAX_LIST_ITEMS,
    NAME_PATTERN,
    AttributeType,
    Automatic,
    normalize_date,
)
from common.platform.errors import ApiError
from common.platform.formats import FORMATS

MAX_NODES = 100
MAX_DEPTH = 8
COMPARISONS = {
    "greaterThan": ">",
    "greaterThanOrEquals": ">=",
    "lessThan": "<",
    "lessThanOrEquals": "<=",
}
LEAVES = (
    "equals",
    "notEquals",
    "in",
    "notIn",
    *COMPARISONS,
    "startsWith",
    "stringContains",
    "listContains",
    "exists",
)
COMBINATORS = ("andAll", "orAll", "not")
OPERATORS = (*LEAVES, *COMBINATORS)

# As `document_attributes` names it: the format's kind, any other text/* is text.
_FILE_TYPE = (
    "CASE d.mime_type "
    + " ".join(
        f"WHEN '{mime}' THEN '{fmt.kind.value}'" for fmt in FORMATS for mime in fmt.mime_types
    )
    + " ELSE CASE WHEN d.mime_type LIKE 'text/%' THEN 'text' ELSE 'other' END END"
)
# Automatic attributes as SQL over the documents row (text, or timestamptz for the dates).
_AUTOMATIC_SQL = {
    Automatic.PATH: "d.path",
    Automatic.FOLDER: "CASE WHEN strpos(d.path, '/') > 0 "
    "THEN regexp_replace(d.path, '/[^/]*$', '') ELSE '' END",
    Automatic.FILE_TYPE: _FILE_TYPE,
    Automatic.CREATED_AT: "d.created_at",
    Automatic.UPDATED_AT: "d.updated_at",
    Automatic.SOURCE_TYPE: "CAST(d.source_type AS text)",
}


def filter_error(path: str, message: str) -> ApiError:
    return ApiError(422, "invalid_filter", f"{path}: {message}")


@dataclass
class CompiledFilter:
    """A predicate over `documents d` and its bound parameters (named `f0`, `f1`, ...)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def parse_filter_text(raw: str, *, path: str = "filter") -> object:
    """A filter given as JSON text (a query parameter, the CLI's --filter)."""
    try:
        return json.loads(raw)
    except ValueError as error:
        raise filter_error(
            path, f"not valid JSON ({error.args[0] if error.args else error})"
        ) from None


def compile_filter(
    raw: object, known: Mapping[str, AttributeType], *, path: str = "filter"
) -> CompiledFilter:
    """Check `raw` against the language and the project's attribute types, and compile it."""
    compiler = _Compiler(known)
    sql = compiler.node(raw, path, depth=1)
    return CompiledFilter(sql, compiler.params)


class _Compiler:
    def __init__(self, known: Mapping[str, AttributeType]) -> None:
        self.known = known
        self.params: dict[str, Any] = {}
        self.nodes = 0

    def bind(self, value: object) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def node(self, raw: object, path: str, depth: int) -> str:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise filter_error(path, f"a filter has at most {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise filter_error(path, f"filters nest at most {MAX_DEPTH} levels")
        if not isinstance(raw, Mapping) or len(raw) != 1:
            raise filter_error(
                path, f"must be an object with one operator ({', '.join(OPERATORS)})"
            )
        [(operator, body)] = raw.items()
        here = f"{path}.{operator}"
        if operator in ("andAll", "orAll"):
            if not isinstance(body, list) or not body:
                raise filter_error(here, "must be a non-empty list of filters")
            parts = [self.node(item, f"{here}[{n}]", depth + 1) for n, item in enumerate(body)]
            joiner = " AND " if operator == "andAll" else " OR "
            return "(" + joiner.join(parts) + ")"
        if operator == "not":
            return f"(NOT {self.node(body, here, depth + 1)})"
        if operator not in LEAVES:
            raise filter_error(
                path, f"unknown operator '{operator}' (one of {', '.join(OPERATORS)})"
            )
        return self.leaf(operator, body, here)

    def leaf(self, operator: str, body: object, path: str) -> str:
        if not isinstance(body, Mapping) or not isinstance(body.get("key"), str):
            raise filter_error(path, "must be an object with a 'key' (and a 'value')")
        allowed = {"key"} if operator == "exists" else {"key", "value"}
        if set(body) - allowed or (operator != "exists" and "value" not in body):
            raise filter_error(path, f"takes exactly {' and '.join(sorted(allowed))}")
        key = body["key"]
        kind = self.type_of(key, f"{path}.key")
        if operator == "exists":
            return self.exists(key)
        value = body["value"]
        value_path = f"{path}.value"
        if operator in ("in", "notIn"):
            values = self.values(value, kind, value_path, listed=True)
            found = " OR ".join(self.equals(key, kind, item) for item in values)
            return (
                f"coalesce(({found}), false)"
                if operator == "in"
                else f"NOT coalesce(({found}), false)"
            )
        if operator in ("equals", "notEquals"):
            [single] = self.values(value, kind, value_path, listed=False)
            found = self.equals(key, kind, single)
            return (
                f"coalesce({found}, false)"
                if operator == "equals"
                else f"NOT coalesce({found}, false)"
            )
        if operator in COMPARISONS:
            return self.compare(key, kind, COMPARISONS[operator], value, value_path)
        if operator == "listContains":
            if kind is not AttributeType.STRING_LIST:
                raise filter_error(path, f"'{key}' is a {kind.value}, not a list")
            return self.contains_item(key, self.text_value(value, value_path))
        return self.text_match(operator, key, kind, self.text_value(value, value_path), path)

    def type_of(self, key: str, path: str) -> AttributeType:
        if key in AUTOMATIC_TYPES:
            return AUTOMATIC_TYPES[key]
        if key not in self.known:
            names = ", ".join(sorted([*self.known, *AUTOMATIC_TYPES])[:30])
            raise filter_error(path, f"no document of this project has '{key}' (known: {names})")
        return self.known[key]

    def values(self, raw: object, kind: AttributeType, path: str, *, listed: bool) -> list[object]:
        if listed:
            if not isinstance(raw, list) or not raw or len(raw) > MAX_LIST_ITEMS:
                raise filter_error(path, f"must be a list of 1-{MAX_LIST_ITEMS} values")
            items = raw
        else:
            items = [raw]
        return [
            self.typed(item, kind, f"{path}[{n}]" if listed else path)
            for n, item in enumerate(items)
        ]

    def typed(self, raw: object, kind: AttributeType, path: str) -> object:
        """A filter value checked against its key's type (dates normalised as stored)."""
        if kind is AttributeType.NUMBER:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise filter_error(path, "must be a number")
            return raw
        if kind is AttributeType.BOOLEAN:
            if not isinstance(raw, bool):
                raise filter_error(path, "must be true or false")
            return raw
        if kind is AttributeType.DATE:
            stored = normalize_date(raw) if isinstance(raw, str) else None
            if stored is None:
                raise filter_error(
                    path, "must be an ISO 8601 date (2025-03-01 or 2025-03-01T09:30Z)"
                )
            return stored
        if kind is AttributeType.STRING_LIST:
            if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
                raise filter_error(path, "must be a list of strings (use listContains for one)")
            return raw
        return self.text_value(raw, path)

    def text_value(self, raw: object, path: str) -> str:
        if not isinstance(raw, str) or "\x00" in raw:
            raise filter_error(path, "must be a string")
        return raw

    def equals(self, key: str, kind: AttributeType, value: object) -> str:
        if key in _AUTOMATIC_SQL:
            column = _AUTOMATIC_SQL[Automatic(key)]
            if kind is AttributeType.DATE:
                return f"{column} = CAST({self.bind(value)} AS timestamptz)"
            return f"{column} = {self.bind(value)}"
        # Containment: the GIN index on documents.attributes serves it.
        return f"d.attributes @> CAST({self.bind(json.dumps({key: value}))} AS jsonb)"

    def exists(self, key: str) -> str:
        if key in _AUTOMATIC_SQL:
            return "true"
        return f"jsonb_exists(d.attributes, {self.bind(key)})"

    def compare(self, key: str, kind: AttributeType, operator: str, raw: object, path: str) -> str:
        if kind not in (AttributeType.NUMBER, AttributeType.DATE):
            raise filter_error(path, f"'{key}' is a {kind.value}: only numbers and dates compare")
        value = self.typed(raw, kind, path)
        if key in _AUTOMATIC_SQL:
            column = _AUTOMATIC_SQL[Automatic(key)]
            return f"coalesce({column} {operator} CAST({self.bind(value)} AS timestamptz), false)"
        name = self.bind(key)
        if kind is AttributeType.NUMBER:
            column = (
                f"CASE WHEN jsonb_typeof(d.attributes -> {name}) = 'number' "
                f"THEN CAST(d.attributes ->> {name} AS numeric) END"
            )
            return f"coalesce({column} {operator} CAST({self.bind(value)} AS numeric), false)"
        # Dates are stored as fixed-width UTC text: text order is time order.
        return f"coalesce((d.attributes ->> {name}) {operator} {self.bind(value)}, false)"

    def contains_item(self, key: str, value: str) -> str:
        return f"d.attributes @> CAST({self.bind(json.dumps({key: [value]}))} AS jsonb)"

    def text_match(
        self, operator: str, key: str, kind: AttributeType, value: str, path: str
    ) -> str:
        if kind not in (AttributeType.STRING, AttributeType.STRING_LIST):
            raise filter_error(path, f"'{key}' is a {kind.value}: {operator} needs text")
        bound = self.bind(value)
        test = f"starts_with(t, {bound})" if operator == "startsWith" else f"strpos(t, {bound}) > 0"
        if key in _AUTOMATIC_SQL:
            column = _AUTOMATIC_SQL[Automatic(key)]
            return f"coalesce((SELECT {test} FROM (SELECT {column} AS t) x), false)"
        name = self.bind(key)
        if kind is AttributeType.STRING_LIST:
            return (
                f"coalesce((SELECT bool_or({test}) FROM jsonb_array_elements_text("
                f"CASE WHEN jsonb_typeof(d.attributes -> {name}) = 'array' "
                f"THEN d.attributes -> {name} ELSE '[]' END) AS e(t)), false)"
            )
        return f"coalesce((SELECT {test} FROM (SELECT d.attributes ->> {name} AS t) x), false)"


FILTER_SCHEMA_NAME = "DocumentFilter"
FILTER_REF = {"$ref": f"#/components/schemas/{FILTER_SCHEMA_NAME}"}
_SCALAR = {"type": ["string", "number", "boolean"]}


def _value_schema(operator: str) -> dict[str, Any]:
    if operator in ("in", "notIn"):
        return {"type": "array", "minItems": 1, "maxItems": MAX_LIST_ITEMS, "items": _SCALAR}
    if operator in ("equals", "notEquals"):
        return {"anyOf": [_SCALAR, {"type": "array", "items": {"type": "string"}}]}
    if operator in COMPARISONS:
        return {"type": ["number", "string"]}
    return {"type": "string"}


def _leaf_schema(operator: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "object",
        "properties": {"key": {"type": "string", "pattern": NAME_PATTERN}},
        "required": ["key"],
        "additionalProperties": False,
    }
    if operator != "exists":
        body["properties"]["value"] = _value_schema(operator)
        body["required"] = ["key", "value"]
    return _one(operator, body)


def _one(operator: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {operator: body},
        "required": [operator],
        "additionalProperties": False,
    }


_FILTERS = {"type": "array", "minItems": 1, "maxItems": 10, "items": FILTER_REF}
# The language as JSON Schema: the OpenAPI document's `DocumentFilter` component, recursive
# through its combinators. Whether a key exists in the project and its value has the key's
# type depends on the project's data: those are 422s no static schema can state.
FILTER_SCHEMA: dict[str, Any] = {
    "description": "A document filter: one operator per object. Leaves ("
    + ", ".join(LEAVES)
    + ") take {key, value} (exists only key); andAll and orAll take lists of filters, not "
    "takes one.",
    "oneOf": [
        *(_leaf_schema(operator) for operator in LEAVES),
        _one("andAll", _FILTERS),
        _one("orAll", _FILTERS),
        _one("not", FILTER_REF),
    ],
}
