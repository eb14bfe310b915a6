"""JSON and JSON Lines files: records as `key.path: value` blocks cited by record or line
number, what counts as a record, bad lines, depth bombs, the record limit, and the real pipeline.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.ingestion.chunking import chunk_text
from common.ingestion.extract import ExtractedText, extract_text
from common.ingestion.extractors.base import ExtractOptions
from common.ingestion.locations import with_locations
from common.platform.errors import PermanentIngestionError
from common.platform.models import DocumentStatus, JobStatus
from tests.fixtures.factories import Tenant
from tests.fixtures.stack import IngestionStack
from tests.mangling import assert_fails_only_cleanly, mangle
from tests.test_ingestion import chunks_of, finalize, jobs_of, upload, wait_for_document

JSON = "application/json"
JSONL = "application/x-ndjson"
ORDERS = [
    {"order": 1001, "customer": {"name": "Ada", "city": "Oslo"},
     "items": [{"sku": "XK-4471", "qty": 2}, {"sku": "SEAL-9", "qty": 1}], "paid": True},
    {"order": 1002, "customer": {"name": "Bo", "city": None}, "items": [], "total": 1599.99},
]  # fmt: skip
ORDER_LINES = [
    "order: 1001\ncustomer.name: Ada\ncustomer.city: Oslo\nitems[0].sku: XK-4471\n"
    "items[0].qty: 2\nitems[1].sku: SEAL-9\nitems[1].qty: 1\npaid: true",
    "order: 1002\ncustomer.name: Bo\ncustomer.city: null\nitems: []\ntotal: 1599.99",
]


class WordCounter:
    def count_tokens(self, text: str) -> int:
        return len(text.split())


def extract(data: bytes | str, mime_type: str | None = JSON, **limits: Any) -> ExtractedText:
    raw = data.encode() if isinstance(data, str) else data
    filename = "a.jsonl" if mime_type == JSONL else "a.json"
    return extract_text(
        raw, mime_type=mime_type, filename=filename, options=ExtractOptions(**limits)
    )


def fails_with(data: bytes | str, message: str, mime_type: str = JSON) -> str:
    with pytest.raises(PermanentIngestionError) as caught:
        extract(data, mime_type)
    assert message in str(caught.value)
    return str(caught.value)


def cited_records(location: str | None) -> tuple[int, int]:
    """("records 3-5" | "record 3") -> (3, 5) | (3, 3)."""
    assert location is not None and location.startswith("record")
    first, _, last = location.split(" ")[1].partition("-")
    return int(first), int(last or first)


def record_numbers(doc: ExtractedText) -> list[int]:
    return [row.number for row in doc.rows]


def test_array_elements_are_records_of_flattened_key_paths() -> None:
    doc = extract(json.dumps(ORDERS))
    assert doc.text == "\n\n".join(ORDER_LINES)
    assert record_numbers(doc) == [1, 2]
    assert doc.row_unit.value == "record" and not doc.paged
    assert [doc.text[row.char_start :].split("\n")[0] for row in doc.rows] == [
        "order: 1001",
        "order: 1002",
    ]


def test_an_object_wrapping_one_array_of_objects_reads_its_elements_under_a_header() -> None:
    wrapped = {"page": 2, "source": {"system": "erp"}, "data": ORDERS}
    doc = extract(json.dumps(wrapped))
    assert doc.text == "\n\n".join(["page: 2\nsource.system: erp", *ORDER_LINES])
    assert record_numbers(doc) == [1, 2]


def test_other_objects_are_records_by_top_level_key_and_lone_values_are_one_record() -> None:
    config = {"server": {"port": 8080, "tls": False}, "users": ["ada", "bo"], "name": "pump\nctl"}
    doc = extract(json.dumps(config))
    assert (
        doc.text
        == "server.port: 8080\nserver.tls: false\n\nusers[0]: ada\nusers[1]: bo\n\nname: pump ctl"
    )
    assert record_numbers(doc) == [1, 2, 3]
    assert extract('"just text"').text == "just text"
    assert extract("[1, [2, 3]]").text == "1\n\n[0]: 2\n[1]: 3"


def test_json_lines_are_records_numbered_by_their_line() -> None:
    data = "\n".join(json.dumps(order) for order in ORDERS[:1]) + "\n\n" + json.dumps(ORDERS[1])
    doc = extract(data, JSONL)
    assert doc.text == "\n\n".join(ORDER_LINES)
    assert record_numbers(doc) == [1, 3]
    assert doc.notices == []


def test_a_few_bad_json_lines_are_skipped_with_a_notice() -> None:
    lines = [json.dumps({"n": n}) for n in range(6)]
    lines[2], lines[4] = '{"broken": ', "not json"
    doc = extract("\n".join(lines), JSONL)
    assert record_numbers(doc) == [1, 2, 4, 6]
    assert doc.notices == [
        "2 lines of the JSON Lines file are not valid JSON and were skipped (the first is line 3)"
    ]


def test_mostly_bad_json_lines_fail_unless_the_file_is_one_json_document() -> None:
    message = fails_with(
        '{"a": 1}\n{"b"\nnope\n', "the JSON Lines file is not valid JSON Lines: ", JSONL
    )
    assert message.endswith("2 of 3 lines are not JSON (line 2: Expecting ':' delimiter)")
    pretty = json.dumps(ORDERS, indent=2)
    assert extract(pretty, JSONL).text == "\n\n".join(ORDER_LINES)


def test_a_json_file_of_one_value_per_line_reads_as_json_lines() -> None:
    doc = extract("\n".join(json.dumps(order) for order in ORDERS), JSON)
    assert doc.text == "\n\n".join(ORDER_LINES)
    assert record_numbers(doc) == [1, 2]


def test_invalid_json_fails_naming_line_and_column_not_content() -> None:
    message = fails_with(
        '{\n  "secret": "hunter2",\n  "x": tru\n}', "the JSON file is not valid JSON: "
    )
    assert message.endswith("Expecting value (line 3, column 8)")
    assert "hunter2" not in message


def test_depth_bombs_and_huge_numbers_fail_as_permanent_errors() -> None:
    fails_with("[" * 200_000 + "]" * 200_000, "the JSON file is nested too deeply to read")
    fails_with("[" + "9" * 5000 + "]", "the JSON file holds a number too long to read")
    deep = "[" * 900 + '"bottom"' + "]" * 900  # within the parser's limit: flattened iteratively
    assert extract(deep).text.endswith("[0]: bottom")
    bombs = '{"ok": 1}\n' + "[" * 200_000 + "]" * 200_000 + '\n{"ok": 2}'
    doc = extract(bombs, JSONL)
    assert record_numbers(doc) == [1, 3]
    assert doc.notices == ["line 2 of the JSON Lines file is not valid JSON and was skipped"]


def test_records_past_the_limit_are_left_out_with_a_notice() -> None:
    doc = extract(json.dumps([{"n": n} for n in range(10)]), max_rows=3)
    assert doc.text == "n: 0\n\nn: 1\n\nn: 2"
    assert doc.notices == [
        "only the first 3 records of the JSON file were read; the records after them were left out"
    ]


def test_empty_documents_are_rejected() -> None:
    fails_with("[]", "no records in the JSON file")
    fails_with("\n\n", "no records in the JSON Lines file", JSONL)


def test_chunks_hold_whole_records_and_cite_them() -> None:
    records = [
        {"id": n, "sku": f"XK-{n}", "tags": [f"t{k}" for k in range(n % 7)]} for n in range(60)
    ]
    doc = extract("\n".join(json.dumps(record) for record in records), JSONL)
    chunks = with_locations(
        chunk_text(doc, max_tokens=40, overlap_tokens=0, tokenizer=WordCounter()), doc
    )
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.content.startswith("id: ")  # never a record's tail
        first, last = cited_records(chunk.location)
        assert f"id: {first - 1}\n" in chunk.content and f"id: {last - 1}\n" in chunk.content


def test_mangled_json_fails_only_with_permanent_errors() -> None:
    """Fuzz: byte flips and cuts either extract or raise PermanentIngestionError, never leak."""
    original = json.dumps(ORDERS * 5).encode()
    assert_fails_only_cleanly(
        lambda n, rng: mangle(
            original, rng, flips=10, alphabet=b'[]{}",:\\0e-\n' if n % 2 else None
        ),
        lambda n, data: extract(data, JSONL if n % 3 == 0 else JSON),
        seed=4716,
        attempts=300,
        forbidden=("XK-4471", "Ada"),
    )


def test_json_lines_file_becomes_ready_with_chunks_citing_records(
    ingestion_stack: IngestionStack, tenant: Tenant
) -> None:
    orders = [
        {"order": 5000 + n, "customer": {"name": f"Customer {n}"},
         "items": [{"sku": f"XK-{n}", "qty": n % 4 + 1}], "note": "routine pump service"}
        for n in range(200)
    ]  # fmt: skip
    orders[150]["note"] = "the copper valve was replaced"
    data = "\n".join(json.dumps(order) for order in orders).encode()
    blob = upload(ingestion_stack, tenant, "exports/orders.jsonl", data, JSONL)
    finalize(ingestion_stack, blob)
    document = wait_for_document(ingestion_stack, tenant, blob, {DocumentStatus.READY})
    [job] = jobs_of(document.id)
    assert job.status is JobStatus.SUCCEEDED
    chunks = chunks_of(document.id)
    assert len(chunks) > 3
    assert all(chunk.location and chunk.location.startswith("record") for chunk in chunks)
    [valve] = [chunk for chunk in chunks if "copper valve" in chunk.content]
    assert "order: 5150\n" in valve.content
    first, last = cited_records(valve.location)
    assert first <= 151 <= last
