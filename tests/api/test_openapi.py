"""The OpenAPI document and the docs page: valid 3.1, generated from the models, safe HTML."""

from __future__ import annotations

import copy
import html
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from app.adapters.db.tables import BroadcastRow, CallRow
from app.api.docs_page import METHODS, docs_page
from app.api.models import PlayRequest
from app.api.openapi import openapi_document
from app.api.records import call_record
from app.api.responses import CallRecord
from app.main import create_app
from tests.support.settings import without_asterisk

README = Path(__file__).resolve().parents[2] / "README.md"
SCHEMA_REF = "#/components/schemas/"


@pytest.fixture
def document() -> dict[str, Any]:
    return openapi_document(max_recipients=7, max_playlist_items=3)


def _founding_example() -> dict[str, Any]:
    """The body of the README's first `curl … -d '{…}'` (Start a broadcast)."""
    match = re.search(r"-d '(\{.*?\})'", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, "the README lost its founding example"
    body: dict[str, Any] = json.loads(match.group(1))
    return body


def _validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A JSON Schema 2020-12 validator for one component, its $refs resolved in the document."""
    root = {**document, "$ref": SCHEMA_REF + name}
    return jsonschema.Draft202012Validator(root)


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, item[method]) for path, item in document["paths"].items()
            for method in METHODS if method in item]


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)
    json.dumps(document)  # plain JSON, nothing else


def test_every_reference_resolves_to_a_component(document):
    schemas = document["components"]["schemas"]
    refs = _refs(document)
    assert refs, "expected $refs into components"
    for ref in refs:
        assert ref.startswith(SCHEMA_REF) and ref.removeprefix(SCHEMA_REF) in schemas, ref
    assert "$defs" not in json.dumps(document)


def test_the_play_request_schema_is_the_models(document):
    play = document["components"]["schemas"]["PlayRequest"]
    generated = PlayRequest.model_json_schema(mode="validation")
    assert set(play["properties"]) == set(generated["properties"])
    assert "from" in play["properties"] and "from" in play["required"]
    assert "caller" not in play["properties"]
    body = document["paths"]["/voice/call/play"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": SCHEMA_REF + "PlayRequest"}


def test_the_play_request_schema_accepts_the_readme_example(document):
    example = _founding_example()
    PlayRequest.model_validate(example)  # the example is still what the service accepts
    validator = _validator(document, "PlayRequest")
    assert list(validator.iter_errors(example)) == []
    one = {"to": example["recipients"][0]["to"], "from": example["from"],
           "playlist": example["playlist"]}
    assert list(validator.iter_errors(one)) == []
    assert not validator.is_valid({"from": "me", "playlist": example["playlist"],
                                   "recipients": example["recipients"], "caller": "me"})
    assert not validator.is_valid({"from": "me", "recipients": example["recipients"]})


def test_list_limits_come_from_the_arguments(document):
    play = document["components"]["schemas"]["PlayRequest"]["properties"]
    arrays = [branch for branch in play["recipients"]["anyOf"] if branch.get("type") == "array"]
    assert [branch["maxItems"] for branch in arrays] == [7]
    assert play["playlist"]["maxItems"] == 3
    other = openapi_document(max_recipients=100_000, max_playlist_items=20)
    assert other["components"]["schemas"]["PlayRequest"]["properties"]["playlist"][
        "maxItems"] == 20


def _rows(**call: Any) -> tuple[CallRow, BroadcastRow]:
    at = datetime(2026, 11, 26, 14, 10, 37, tzinfo=UTC)
    broadcast = BroadcastRow(id=str(uuid.uuid4()), report_id=str(uuid.uuid4()), tenant="t",
                             caller="me", playlist=[{"pause": 1.0}], total_calls=1,
                             created_at=at, speech=None)
    fields: dict[str, Any] = {"id": str(uuid.uuid4()), "broadcast_id": broadcast.id,
                              "position": 0, "target": "sip:alice@192.0.2.10:5060",
                              "state": "queued", "request_time": at}
    fields.update(call)
    return CallRow(**fields), broadcast


@pytest.mark.parametrize("call", [
    {},  # queued: nothing happened yet
    {"state": "ended", "result": "failed", "disconnect_time": datetime(2026, 1, 1, tzinfo=UTC),
     "sip_text": "no route", "sip_code_source": "none"},
    {"state": "ended", "result": "completed", "attempt": 2,
     "setup_time": datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),
     "ring_time": datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
     "connect_time": datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC),
     "disconnect_time": datetime(2026, 1, 1, 0, 0, 9, tzinfo=UTC), "sip_code": 200,
     "sip_text": "OK", "sip_code_source": "answered", "q850_cause": 16,
     "q850_text": "Normal Clearing", "hangup_by": "service", "playback": ["done"],
     "speech": [{"engine": "flite"}]},
])
def test_call_record_lists_every_field_the_records_emit(document, call):
    record = call_record(*_rows(**call))
    schema = document["components"]["schemas"]["CallRecord"]
    assert set(record) <= set(schema["properties"]), "CallRecord misses fields records.py emits"
    assert list(_validator(document, "CallRecord").iter_errors(record)) == []
    CallRecord.model_validate(record)


def test_call_record_optional_times(document):
    schema = document["components"]["schemas"]["CallRecord"]
    for optional in ("connect_time", "ring_time"):
        assert optional not in schema["required"]
        assert {"type": "null"} in schema["properties"][optional]["anyOf"]
    assert "from" in schema["required"] and "from_" not in schema["properties"]


def test_operations_security_and_statuses(document):
    operations = {(path, method): operation for path, method, operation in _operations(document)}
    assert set(operations) == {
        ("/voice/call/play", "post"), ("/voice/call/status/{id}", "get"),
        ("/report/{report_id}", "get"), ("/voice/call/{request_id}", "delete"),
        ("/media", "post"), ("/monitor", "get"), ("/health", "get"), ("/ready", "get"),
        ("/openapi.json", "get"), ("/docs", "get")}
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <api key>`"}
    assert document["security"] == [{"bearerAuth": []}]
    public = {"/health", "/ready", "/openapi.json", "/docs"}
    for (path, _), operation in operations.items():
        if path in public:
            assert operation["security"] == []
        else:
            assert "security" not in operation and "401" in operation["responses"]
    play = operations[("/voice/call/play", "post")]
    assert set(play["responses"]) == {"200", "400", "401", "409", "413", "415", "422"}
    key = play["parameters"][0]
    assert (key["name"], key["in"], key["required"]) == ("Idempotency-Key", "header", False)
    media = operations[("/media", "post")]["requestBody"]["content"]
    assert set(media) == {"audio/wav", "audio/mpeg", "audio/ogg", "audio/flac",
                          "application/octet-stream"}
    status = operations[("/voice/call/status/{id}", "get")]["responses"]["200"]
    assert status["content"]["application/json"]["schema"] == {"oneOf": [
        {"$ref": SCHEMA_REF + "RequestStatus"}, {"$ref": SCHEMA_REF + "CallStatus"}]}
    assert operations[("/docs", "get")]["responses"]["200"]["content"] == {
        "text/html": {"schema": {"type": "string"}}}


def test_the_envelope_examples_of_the_readme_match_the_response_schemas(document):
    accepted = {"code": 0, "status": 200, "data": "accepted", "request_id": "3f0c"}
    assert _validator(document, "Accepted").is_valid(accepted)
    error = {"code": 1001, "status": 400, "data": "invalid_request", "error": "invalid_request",
             "message": "recipients[3].to: must be a SIP URI",
             "details": [{"field": "recipients[3].to", "message": "must be a SIP URI"}]}
    assert _validator(document, "ErrorBody").is_valid(error)
    assert not _validator(document, "ErrorBody").is_valid({**error, "code": 0})
    assert not _validator(document, "Accepted").is_valid({**accepted, "code": 1})


def test_the_docs_page_lists_every_operation_and_links_nowhere_else(document):
    page = docs_page(document)
    for path, method, operation in _operations(document):
        assert method.upper() in page and path in page
        assert html.escape(operation["summary"]) in page
        for parameter in operation.get("parameters", []):
            assert parameter["name"] in page
    assert "PlayRequest" in page and "&quot;from&quot;" in page  # the request body schema
    assert re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I) is None
    assert not re.search(r"<script|<link|@import|url\(", page, re.I)


def test_the_docs_page_escapes_every_value(document):
    hostile = copy.deepcopy(document)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    hostile["info"]["title"] = evil
    operation = hostile["paths"]["/health"]["get"]
    operation["summary"] = evil
    operation["description"] = evil
    operation["responses"]["200"]["description"] = evil
    hostile["components"]["schemas"]['"><svg onload=alert(1)>'] = {"description": evil}
    page = docs_page(hostile)
    assert "<script" not in page and "<img" not in page and "<svg" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    settings = without_asterisk(tmp_path, max_recipients=42, max_playlist_items=4)
    client: TestClient = await aiohttp_client(create_app(settings))
    return client


async def test_the_app_serves_the_document_and_the_page(client):
    response = await client.get("/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    served = await response.json()
    assert served == openapi_document(max_recipients=42, max_playlist_items=4)
    page = await client.get("/docs")
    assert page.status == 200 and page.content_type == "text/html"
    assert "/voice/call/play" in await page.text()
