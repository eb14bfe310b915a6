"""Eventarc storage trigger: object finalized / deleted -> document row, job row, job message.

Returning acknowledges the event; raising (TransientError) makes Eventarc retry it.

The trigger (SQLAlchemy, the schema, storage and Pub/Sub clients) is imported by the first
event, not at start-up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import functions_framework

from common.platform.events import (
    STORAGE_DELETED,
    STORAGE_FINALIZED,
    MalformedEventError,
    parse_storage_event,
)
from common.platform.runtime import answer_transient_errors_with_503, start_function

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

start_function()
answer_transient_errors_with_503()
logger = logging.getLogger("functions.ingest_trigger")


@functions_framework.cloud_event
def ingest_trigger(event: CloudEvent) -> None:
    attributes = event.get_attributes()
    try:
        parsed = parse_storage_event(dict(attributes), event.get_data())
    except MalformedEventError as error:
        logger.warning("malformed storage event acknowledged: %s", error)
        return
    from common.ingestion import trigger  # the first event pays the import, once

    if parsed.event_type == STORAGE_FINALIZED:
        result = trigger.handle_object_finalized(parsed)
    elif parsed.event_type == STORAGE_DELETED:
        result = trigger.handle_object_deleted(parsed)
    else:
        logger.warning("unexpected event type acknowledged", extra={"type": parsed.event_type})
        return
    logger.info(
        "storage event handled",
        extra={"event_id": parsed.event_id, "outcome": result.outcome.value},
    )
