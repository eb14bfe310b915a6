"""Start-up shared by the functions: validated settings, JSON logs, schema check (once)."""

from __future__ import annotations

import threading

from common.platform.config import Settings, load_settings
from common.platform.errors import TransientError
from common.platform.log import configure_logging

_lock = threading.Lock()
_checked = False


def start_function() -> Settings:
    """Called at import time: a wrong setting stops the instance with a message naming it."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return settings


def retry_status(error: TransientError) -> tuple[str, int]:
    """A transient failure (already logged where it happened) asks the sender to redeliver
    with a 503: no Flask "Exception on /" traceback for what is a normal, retried outcome."""
    return "", 503


def answer_transient_errors_with_503() -> None:
    """For event functions: register `retry_status` with functions-framework's Flask app."""
    import functions_framework

    functions_framework.errorhandler(TransientError)(retry_status)


def ensure_schema_matches() -> None:
    """Refuse to work on a database built for another embedding dimension (checked once)."""
    global _checked
    if _checked:
        return
    with _lock:
        if not _checked:
            from common.platform.db import check_embedding_dimension

            check_embedding_dimension()
            _checked = True
