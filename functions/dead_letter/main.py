"""Dead-letter handler: a job message Pub/Sub gave up on fails its job (never stuck).

The sweeper (SQLAlchemy, the schema) is imported by the first message, not at start-up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import functions_framework

from common.platform.events import MalformedEventError, parse_job_message
from common.platform.runtime import answer_transient_errors_with_503, start_function

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

start_function()
answer_transient_errors_with_503()
logger = logging.getLogger("functions.dead_letter")


@functions_framework.cloud_event
def dead_letter(event: CloudEvent) -> None:
    try:
        message = parse_job_message(event.get_data())
    except MalformedEventError as error:
        logger.warning("malformed dead letter acknowledged: %s", error)
        return
    from common.ingestion.sweeper import handle_dead_letter  # the first message pays, once

    changed = handle_dead_letter(message)
    logger.info("dead letter handled", extra={"job_id": str(message.job_id), "changed": changed})
