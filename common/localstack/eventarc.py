"""Storage CloudEvents as Eventarc sends them: see `common.platform.object_events`."""

from common.platform.object_events import (
    DELETED,
    FINALIZED,
    send_storage_event,
    storage_event,
    storage_object_data,
)

__all__ = ["DELETED", "FINALIZED", "send_storage_event", "storage_event", "storage_object_data"]
