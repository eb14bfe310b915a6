"""pg8000 turns every statement's `%s` placeholders into `$n` by scanning it character by
character, in Python, on every execution: 2 ms for the search statement (a 5,000-character
text), twice per question, more than the database took to plan it. The result depends only on
the text, so it is computed once per distinct statement (bounded; long one-off texts, such as
DDL with literals, are not kept).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from pg8000 import dbapi, legacy

# The driver's own conversion, taken before `install` replaces it.
DRIVER_CONVERSION: Callable[[str, str, Any], tuple[str, Any]] = dbapi.convert_paramstyle
# The statements this process runs are a few hundred distinct texts; longer ones are one-offs.
MAX_STATEMENTS = 1024
MAX_CACHED_LENGTH = 20_000

_lock = threading.Lock()
_installed = False


def install() -> None:
    """Route pg8000's cursors through the cached conversion (once per process): SQLAlchemy's
    (`pg8000.connect`, the legacy API, which took its own reference) and the DB-API ones."""
    global _installed
    with _lock:
        if _installed:
            return
        conversion = cached_conversion(DRIVER_CONVERSION)
        dbapi.convert_paramstyle = conversion
        legacy.convert_paramstyle = conversion
        _installed = True


def cached_conversion(
    convert: Callable[[str, str, Any], tuple[str, Any]],
) -> Callable[[str, str, Any], tuple[str, Any]]:
    """`convert` with its "format" style (SQLAlchemy's) answered from a cache: in that style
    the values pass through unchanged and the text comes from the text alone."""

    @functools.lru_cache(maxsize=MAX_STATEMENTS)
    def converted(query: str) -> str:
        return convert("format", query, ())[0]

    def conversion(style: str, query: str, args: Any) -> tuple[str, Any]:
        if style != "format" or len(query) > MAX_CACHED_LENGTH:
            return convert(style, query, args)
        return converted(query), args

    return conversion
