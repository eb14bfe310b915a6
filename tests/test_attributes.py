"""Document attributes on the real stack: object metadata, sidecars in any order, typing.

Objects go into the GCS emulator and their storage events to the served ingest_trigger, as
Eventarc would send them; the worker embeds the file once, and attribute changes never run it
again.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.localstack.eventarc import DELETED
from common.platform.attributes import (
    AttributeType,
    AttributeValueError,
    format_date,
    parse_json_attributes,
    parse_object_metadata,
    parse_sidecar,
    typed,
)
from common.platform.db import transaction
from common.platform.models import Document, DocumentStatus
from common.platform.object_events import send_storage_event
from common.platform.storage import BlobInfo, get_blob_store
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.test_ingestion import chunks_of, finalize, jobs_of, upload, wait_for_document

pytestmark = pytest.mark.timeout(300)
TEXT = b"The harbour crane lifts 42 tonnes on calm days."


def _sidecar(
    stack: IngestionStack, tenant: Tenant, path: str, attributes: object, raw: bytes | None = None
) -> BlobInfo:
    data = raw if raw is not None else json.dumps({"metadataAttributes": attributes}).encode()
    blob = upload(stack, tenant, f"{path}.metadata.json", data, "application/json")
    finalize(stack, blob)
    return blob


def _document(tenant: Tenant, path: str) -> Document:
    with transaction() as session:
        found = session.query(Document).filter_by(project_id=tenant.project_id, path=path).one()
        session.expunge(found)
        return found


def test_values_are_typed_from_json_strings_and_bedrock_forms() -> None:
    values = parse_json_attributes(
        {
            "department": "legal",
            "year": 2025,
            "signed": True,
            "tags": ["lease", "urgent"],
            "effective": "2025-03-01",
            "typed": {"value": {"type": "NUMBER", "numberValue": 7}},
        }
    )
    stored = typed(values, {}, path="metadata")  # type: ignore[arg-type]
    assert stored["effective"] == "2025-03-01T00:00:00.000000Z"
    assert stored["typed"] == 7 and stored["tags"] == ["lease", "urgent"]
    # From strings (object metadata): by the registry's type, else by their look.
    known = {"code": AttributeType.STRING, "tags": AttributeType.STRING_LIST}
    meta = parse_object_metadata(
        {"code": "0042", "tags": "a, b", "year": "2025", "ok": "true", "title": "ignored"}, known
    )
    assert meta == {"code": "0042", "tags": ["a", "b"], "year": 2025, "ok": True}
    assert format_date(__import__("datetime").date(2025, 1, 2)) == "2025-01-02T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"1bad": "x"}, "sidecar.1bad: names start with"),
        ({"path": "x"}, "'path' is set automatically"),
        ({"nested": {"a": 1}}, "sidecar.nested: unknown typed value"),
        ({"list": [1, 2]}, "a list may hold only strings"),
        ({f"a{n}": n for n in range(51)}, "at most 50 attributes"),
        ({"big": "x" * 9000}, "the limit is 8192"),
    ],
)
def test_bad_sidecars_name_the_offending_attribute(raw: dict[str, object], message: str) -> None:
    with pytest.raises(AttributeValueError) as caught:
        parse_sidecar(json.dumps({"metadataAttributes": raw}).encode())
    assert message in str(caught.value)
    with pytest.raises(AttributeValueError, match="not valid JSON"):
        parse_sidecar(b"{not json")


def test_object_metadata_becomes_typed_attributes_without_touching_the_chunks(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    blob = get_blob_store().upload(
        ingestion_stack.bucket,
        f"{tenant.project_id}/contracts/2025/lease.txt",
        TEXT,
        "text/plain",
        {"department": "legal", "year": "2025", "signed": "true"},
    )
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    stored = _document(tenant, "contracts/2025/lease.txt")
    assert stored.attributes == {"department": "legal", "year": 2025, "signed": True}
    assert stored.path == "contracts/2025/lease.txt" and stored.metadata_error is None
    assert len(jobs_of(document.id)) == 1


def test_sidecar_before_its_file_then_changed_twice_then_deleted(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    path = "hr/policy.txt"
    _sidecar(ingestion_stack, tenant, path, {"department": "hr", "year": 2024})
    blob = upload(ingestion_stack, tenant, path, TEXT, "text/plain")
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    assert _document(tenant, path).attributes == {"department": "hr", "year": 2024}
    chunk_ids = [chunk.id for chunk in chunks_of(document.id)]

    _sidecar(ingestion_stack, tenant, path, {"department": "hr", "year": 2025})
    second = _sidecar(ingestion_stack, tenant, path, {"department": "people", "tags": ["x"]})
    assert _document(tenant, path).attributes == {"department": "people", "tags": ["x"]}
    assert [chunk.id for chunk in chunks_of(document.id)] == chunk_ids, "never re-embedded"
    assert len(jobs_of(document.id)) == 1

    get_blob_store().delete(ingestion_stack.bucket, second.name)
    assert send_storage_event(ingestion_stack.trigger_url, DELETED, second).status_code == 200
    assert _document(tenant, path).attributes == {}


def test_sidecar_events_out_of_order_and_concurrent_end_with_the_newest_generation(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    path = "finance/q3.txt"
    blob = upload(ingestion_stack, tenant, path, TEXT, "text/plain")
    finalize(ingestion_stack, blob)
    wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    # Five generations of the sidecar; their events are delivered concurrently, the oldest last.
    blobs = [
        upload(
            ingestion_stack,
            tenant,
            f"{path}.metadata.json",
            json.dumps({"metadataAttributes": {"revision": n}}).encode(),
            "application/json",
        )
        for n in range(5)
    ]
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda b: finalize(ingestion_stack, b), reversed(blobs)))
    assert _document(tenant, path).attributes == {"revision": 4}
    # A late delete of an old generation changes nothing.
    send_storage_event(ingestion_stack.trigger_url, DELETED, blobs[1])
    assert _document(tenant, path).attributes == {"revision": 4}


def test_bad_sidecar_and_type_conflict_fail_only_the_metadata(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    path = "legal/nda.txt"
    blob = get_blob_store().upload(
        ingestion_stack.bucket,
        f"{tenant.project_id}/{path}",
        TEXT,
        "text/plain",
        {"year": "2025"},
    )
    finalize(ingestion_stack, blob)
    wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    _sidecar(ingestion_stack, tenant, path, None, raw=b"{broken")
    broken = _document(tenant, path)
    assert broken.status is DocumentStatus.READY
    assert broken.attributes == {"year": 2025}, "the object's attributes stay in force"
    assert broken.metadata_error is not None and "not valid JSON" in broken.metadata_error

    _sidecar(ingestion_stack, tenant, path, {"year": "twenty"})
    conflict = _document(tenant, path)
    assert conflict.metadata_error is not None
    assert "sidecar.year: is a number in this project; got a string" in conflict.metadata_error
    _sidecar(ingestion_stack, tenant, path, {"year": None, "owner": "kim"})
    fixed = _document(tenant, path)
    assert fixed.attributes == {"owner": "kim"} and fixed.metadata_error is None


def test_a_sidecar_without_a_document_waits_and_unknown_projects_are_ignored(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    _sidecar(ingestion_stack, tenant, "later/file.txt", {"k": "v"})
    other = Tenant(
        team_id=tenant.team_id,
        project_id=uuid.uuid4(),
        api_key=tenant.api_key,
        api_key_id=tenant.api_key_id,
    )
    _sidecar(ingestion_stack, other, "x.txt", {"k": "v"})  # acknowledged, nothing stored
