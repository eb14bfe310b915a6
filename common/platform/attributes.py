"""Document attributes: typed key/values a team sets to ask within a slice ("only the 2025
contracts of the legal department").

Values are strings, numbers, booleans, dates (ISO 8601, stored as UTC text of one fixed width so
they compare as they sort) and lists of strings. They arrive as JSON (the API, Bedrock-style
`<file>.metadata.json` sidecars) or as strings (an object's `x-goog-meta-*` custom metadata,
`ai-infra upload --meta key=value`); strings are typed by the project's registry when the name is
known there, else by their look (a number, true/false, an ISO date). A name keeps one type per
project (`project_attribute_types`): a value of another type is refused, naming the attribute.
Automatic attributes (`path`, `folder`, `file_type`, `created_at`, `updated_at`,
`source_type`) come from the document itself and cannot be set.
"""

from __future__ import annotations

import json
import math
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
MAX_ATTRIBUTES = 50
MAX_BYTES = 8 * 1024
MAX_LIST_ITEMS = 100
SIDECAR_SUFFIX = ".metadata.json"
# Custom metadata keys the service itself writes on API-created objects (see `sources`).
RESERVED_METADATA_KEYS = frozenset({"source_type", "source_url", "title"})
_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")

AttributeValue = str | float | int | bool | list[str]


# Attributes as JSON Schema (API bodies): names, count, and the value shapes; the project's
# types and the 8 KiB limit are checked on use.
def attributes_schema(*, removals: bool) -> dict[str, Any]:
    value: list[dict[str, Any]] = [
        {"type": ["string", "number", "boolean"]},
        {"type": "array", "maxItems": MAX_LIST_ITEMS, "items": {"type": "string"}},
        {"type": "object", "description": 'Bedrock\'s typed form: {"value": {"type": ...}}'},
    ]
    if removals:
        value.append({"type": "null"})
    return {
        "type": "object",
        "maxProperties": MAX_ATTRIBUTES,
        "propertyNames": {"pattern": NAME_PATTERN, "not": {"enum": sorted(AUTOMATIC_TYPES)}},
        "additionalProperties": {"anyOf": value},
    }


class AttributeType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    STRING_LIST = "string_list"


class Automatic(StrEnum):
    """Attributes every document has, from its own columns."""

    PATH = "path"
    FOLDER = "folder"
    FILE_TYPE = "file_type"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    SOURCE_TYPE = "source_type"


AUTOMATIC_TYPES: dict[str, AttributeType] = {
    Automatic.PATH: AttributeType.STRING,
    Automatic.FOLDER: AttributeType.STRING,
    Automatic.FILE_TYPE: AttributeType.STRING,
    Automatic.CREATED_AT: AttributeType.DATE,
    Automatic.UPDATED_AT: AttributeType.DATE,
    Automatic.SOURCE_TYPE: AttributeType.STRING,
}


class AttributeValueError(ValueError):
    """Attributes that cannot be stored: `path` names the offending part ("metadata.year")."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def normalize_date(value: str) -> str | None:
    """An ISO 8601 date or date-time as fixed-width UTC text, or None when it is not one."""
    if not _ISO_DATE.match(value.strip()):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return format_date(parsed)


def format_date(value: datetime | date) -> str:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def type_of(value: AttributeValue) -> AttributeType:
    """The type of a stored (already typed) value; dates are told by their fixed form."""
    if isinstance(value, bool):
        return AttributeType.BOOLEAN
    if isinstance(value, int | float):
        return AttributeType.NUMBER
    if isinstance(value, list):
        return AttributeType.STRING_LIST
    return AttributeType.DATE if _is_stored_date(value) else AttributeType.STRING


def _is_stored_date(value: str) -> bool:
    return len(value) == 27 and value.endswith("Z") and normalize_date(value) == value


def parse_json_value(path: str, raw: object) -> AttributeValue:
    """A value from JSON: a string, a finite number, a boolean, a list of strings, or Bedrock's
    typed form `{"type": "STRING", "stringValue": ...}`. Strings are typed later (`typed`)."""
    if isinstance(raw, Mapping):
        return _bedrock_typed(path, raw)
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise AttributeValueError(path, "must be a finite number")
        return raw
    if isinstance(raw, str):
        return _checked_text(path, raw)
    if isinstance(raw, list):
        if len(raw) > MAX_LIST_ITEMS:
            raise AttributeValueError(path, f"a list holds at most {MAX_LIST_ITEMS} strings")
        if not all(isinstance(item, str) for item in raw):
            raise AttributeValueError(path, "a list may hold only strings")
        return [_checked_text(f"{path}[{n}]", item) for n, item in enumerate(raw)]
    raise AttributeValueError(path, "must be a string, number, boolean or list of strings")


def _bedrock_typed(path: str, raw: Mapping[str, Any]) -> AttributeValue:
    inner = raw.get("value", raw)
    if not isinstance(inner, Mapping):
        raise AttributeValueError(path, "a typed value needs 'type' and its value")
    kind = str(inner.get("type", "")).upper()
    fields = {
        "STRING": "stringValue",
        "NUMBER": "numberValue",
        "BOOLEAN": "booleanValue",
        "STRING_LIST": "stringListValue",
    }
    if kind not in fields or fields[kind] not in inner:
        raise AttributeValueError(path, f"unknown typed value (types: {', '.join(fields)})")
    value = parse_json_value(path, inner[fields[kind]])
    expected = {
        "STRING": str,
        "NUMBER": int | float,
        "BOOLEAN": bool,
        "STRING_LIST": list,
    }[kind]
    if not isinstance(value, expected) or (kind == "NUMBER" and isinstance(value, bool)):
        raise AttributeValueError(path, f"is not a {kind.lower()}")
    return value


def _checked_text(path: str, value: str) -> str:
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise AttributeValueError(path, "must not contain NUL or unpaired surrogates")
    return value


def parse_string_value(path: str, raw: str, known: AttributeType | None) -> AttributeValue:
    """A value that arrived as a string (object metadata, the CLI): typed by the registry's
    type for the name when known, else by its look."""
    raw = _checked_text(path, raw.strip())
    if known is AttributeType.STRING:
        return raw
    if known is AttributeType.STRING_LIST or (known is None and raw.startswith("[")):
        listed = _json_list(raw)
        if listed is not None:
            return listed
        if known is AttributeType.STRING_LIST:
            return [item.strip() for item in raw.split(",") if item.strip()]
    if raw.lower() in ("true", "false") and known in (None, AttributeType.BOOLEAN):
        return raw.lower() == "true"
    if _NUMBER.match(raw) and known in (None, AttributeType.NUMBER):
        number = float(raw)
        if math.isfinite(number):
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if known in (None, AttributeType.DATE):
        stored = normalize_date(raw)
        if stored is not None:
            return stored
    if known not in (None, AttributeType.STRING):
        raise AttributeValueError(path, f"is a {known.value} in this project; got {raw[:40]!r}")
    return raw


def typed(
    values: Mapping[str, AttributeValue], known: Mapping[str, AttributeType], *, path: str
) -> dict[str, AttributeValue]:
    """Strings typed by the registry (a date where the name is a date, or where the name is new
    and the string is an ISO date); any other value must match its name's known type."""
    result: dict[str, AttributeValue] = {}
    for name, given in values.items():
        expected = known.get(name)
        value = given
        if isinstance(given, str) and expected is not AttributeType.STRING:
            stored = normalize_date(given)
            if stored is not None:
                value = stored
            elif expected is AttributeType.DATE:
                raise AttributeValueError(f"{path}.{name}", "is a date in this project; got text")
        found = type_of(value)
        if expected is not None and found is not expected:
            raise AttributeValueError(
                f"{path}.{name}", f"is a {expected.value} in this project; got a {found.value}"
            )
        result[name] = value
    return result


def _json_list(raw: str) -> list[str] | None:
    """A JSON array of strings written as text (how the API stores a list as object metadata)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def check_name(path: str, name: str) -> None:
    if not _NAME.match(name):
        raise AttributeValueError(
            path, "names start with a letter or _, then letters, digits, _ . - (at most 64)"
        )
    if name in AUTOMATIC_TYPES:
        raise AttributeValueError(path, f"'{name}' is set automatically and cannot be given")


def parse_json_attributes(
    raw: object, *, path: str = "metadata", removals: bool = False
) -> dict[str, AttributeValue | None]:
    """Attributes from a JSON object (the API, sidecars), checked by `check_limits`; with
    `removals`, null marks a name to remove (merge-patch style)."""
    if not isinstance(raw, Mapping):
        raise AttributeValueError(path, "must be an object of attribute names to values")
    values: dict[str, AttributeValue | None] = {}
    for name, value in raw.items():
        check_name(f"{path}.{name}", str(name))
        if value is None and removals:
            values[str(name)] = None
            continue
        values[str(name)] = parse_json_value(f"{path}.{name}", value)
    check_limits(values, path=path)
    return values


def parse_sidecar(data: bytes) -> dict[str, AttributeValue | None]:
    """A `<file>.metadata.json` sidecar: Bedrock's `{"metadataAttributes": {...}}` (or the
    attributes object itself); null removes an attribute of the object's own metadata."""
    if len(data) > 4 * MAX_BYTES:
        raise AttributeValueError("sidecar", f"is larger than {4 * MAX_BYTES} bytes")
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as error:
        raise AttributeValueError(
            "sidecar", f"is not valid JSON ({type(error).__name__})"
        ) from None
    if isinstance(document, Mapping) and "metadataAttributes" in document:
        document = document["metadataAttributes"]
    return parse_json_attributes(document, path="sidecar", removals=True)


def parse_object_metadata(
    metadata: Mapping[str, str], known: Mapping[str, AttributeType]
) -> dict[str, AttributeValue]:
    """Attributes from an object's custom metadata (`x-goog-meta-*`), except the service's
    own keys; a key that is not a valid name is an error naming it."""
    values: dict[str, AttributeValue] = {}
    for key, raw in metadata.items():
        if key in RESERVED_METADATA_KEYS:
            continue
        check_name(f"metadata.{key}", key)
        values[key] = parse_string_value(f"metadata.{key}", raw, known.get(key))
    check_limits(values, path="metadata")
    return values


def check_limits(values: Mapping[str, AttributeValue | None], *, path: str = "metadata") -> None:
    if len(values) > MAX_ATTRIBUTES:
        raise AttributeValueError(path, f"at most {MAX_ATTRIBUTES} attributes per document")
    size = len(json.dumps(values, ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise AttributeValueError(path, f"attributes take {size} bytes; the limit is {MAX_BYTES}")


def merged(*layers: Mapping[str, AttributeValue] | None) -> dict[str, AttributeValue]:
    """Later layers win (object metadata, then the sidecar)."""
    result: dict[str, AttributeValue] = {}
    for layer in layers:
        result.update(layer or {})
    return result


_REGISTER = text(
    """
    INSERT INTO project_attribute_types (project_id, name, type)
    SELECT :project_id, n, t FROM unnest(CAST(:names AS text[]), CAST(:types AS text[])) AS x(n, t)
    ON CONFLICT (project_id, name) DO NOTHING
    """
)
_KNOWN = text("SELECT name, type FROM project_attribute_types WHERE project_id = :project_id")


def known_types(session: Session, project_id: uuid.UUID) -> dict[str, AttributeType]:
    """The project's registry: every attribute name and its type."""
    rows = session.execute(_KNOWN, {"project_id": project_id}).all()
    return {row.name: AttributeType(row.type) for row in rows}


def register_types(
    session: Session,
    project_id: uuid.UUID,
    values: Mapping[str, AttributeValue],
    *,
    path: str = "metadata",
) -> dict[str, AttributeValue]:
    """The values typed by the project's registry (`typed`), new names recorded with their type;
    a value of another type than its name's raises AttributeValueError naming it.

    Concurrent first uses race on the insert; the loser reads the winner's type and is checked
    against it, so a name never holds two types.
    """
    if not values:
        return {}
    values = typed(values, known_types(session, project_id), path=path)
    names = sorted(values)
    session.execute(
        _REGISTER,
        {
            "project_id": project_id,
            "names": names,
            "types": [type_of(values[name]).value for name in names],
        },
    )
    return typed(values, known_types(session, project_id), path=path)


def document_attributes(
    own: Mapping[str, object] | None,
    *,
    path: str | None,
    mime_type: str | None,
    source_type: str | None,
    created_at: datetime | None,
    updated_at: datetime | None,
) -> dict[str, object]:
    """What citations and listings show: the document's own attributes and the automatic ones
    (which filters compute the same way in SQL, see `common.query.filters`)."""
    from common.platform.formats import kind_of_mime

    kind = kind_of_mime(mime_type)
    automatic: dict[str, object] = {
        Automatic.PATH: path,
        Automatic.FOLDER: path.rpartition("/")[0] if path else None,
        Automatic.FILE_TYPE: kind.value if kind else "other",
        Automatic.SOURCE_TYPE: source_type,
        Automatic.CREATED_AT: format_date(created_at) if created_at else None,
        Automatic.UPDATED_AT: format_date(updated_at) if updated_at else None,
    }
    return {**dict(own or {}), **{str(k): v for k, v in automatic.items() if v is not None}}


# Each project's registry as this process last read it (bounded; the oldest read is forgotten).
_REGISTRY_CACHE: OrderedDict[uuid.UUID, dict[str, AttributeType]] = OrderedDict()
_REGISTRY_CACHE_SIZE = 4096
_REGISTRY_LOCK = threading.Lock()


class CachedRegistry(Mapping[str, AttributeType]):
    """A project's registry as this process last read it, read again on a miss.

    A registry only grows and a name keeps its first type (`register_types`), so a name found
    in an earlier read is right for good, and a filter on known names costs no round trip; a
    name not found may have been registered since, so the registry is read once more before
    the name is called unknown (and before the names are listed).
    """

    def __init__(self, session: Session, project_id: uuid.UUID) -> None:
        self._session = session
        self._project_id = project_id
        with _REGISTRY_LOCK:
            self._types = _REGISTRY_CACHE.get(project_id)
        self._read = False

    def _read_again(self) -> dict[str, AttributeType]:
        if not self._read or self._types is None:
            self._types = known_types(self._session, self._project_id)
            self._read = True
            with _REGISTRY_LOCK:
                _REGISTRY_CACHE[self._project_id] = self._types
                _REGISTRY_CACHE.move_to_end(self._project_id)
                while len(_REGISTRY_CACHE) > _REGISTRY_CACHE_SIZE:
                    _REGISTRY_CACHE.popitem(last=False)
        return self._types

    def __getitem__(self, name: str) -> AttributeType:
        if self._types is not None and name in self._types:
            return self._types[name]
        return self._read_again()[name]

    def __contains__(self, name: object) -> bool:
        if self._types is not None and name in self._types:
            return True
        return name in self._read_again()

    def __iter__(self) -> Iterator[str]:
        return iter(self._read_again())

    def __len__(self) -> int:
        return len(self._read_again())
