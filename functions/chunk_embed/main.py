"""Pub/Sub job worker: messagePublished -> extracted, chunked, embedded, stored chunks.

Returning acknowledges the message; raising makes Pub/Sub redeliver it with backoff.

The worker (`common.ingestion.jobs`: SQLAlchemy, numpy, the embedder) is imported by the first
message, not at start-up: an instance starts listening after settings and logging alone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import functions_framework

from common.platform.events import MalformedEventError, parse_job_message
from common.platform.runtime import (
    answer_transient_errors_with_503,
    ensure_schema_matches,
    start_function,
)

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

start_function()
answer_transient_errors_with_503()
logger = logging.getLogger("functions.chunk_embed")


@functions_framework.cloud_event
def chunk_embed(event: CloudEvent) -> None:
    try:
        message = parse_job_message(event.get_data())
    except MalformedEventError as error:
        logger.warning("malformed job message acknowledged: %s", error)
        return
    ensure_schema_matches()
    from common.ingestion.jobs import run_job  # the first message pays the import, once

    outcome = run_job(message)
    logger.info("job message handled", extra={"job_id": str(message.job_id), "outcome": outcome})
