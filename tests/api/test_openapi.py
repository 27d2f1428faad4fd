"""The OpenAPI document and the docs page: valid 3.1, generated from the models, safe HTML."""

from __future__ import annotations

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

from app.api.docs_page import ASSETS, CONTENT_SECURITY_POLICY, PAGE, START_SCRIPT
from app.api.models import PlayRequest
from app.api.openapi import openapi_document
from app.api.records import call_record
from app.api.responses import CallRecord
from app.domain import broadcasts
from app.main import create_app
from tests.support.settings import without_asterisk

README = Path(__file__).resolve().parents[2] / "README.md"
SCHEMA_REF = "#/components/schemas/"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _document(**changes: Any) -> dict[str, Any]:
    limits = {"max_recipients": 7, "max_playlist_items": 3, "max_text_chars": 2000,
              "phone_numbers": True, **changes}
    return openapi_document(**limits)


@pytest.fixture
def document() -> dict[str, Any]:
    return _document()


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
    # `trunk` only where trunks are configured (see the test below)
    assert set(play["properties"]) == set(generated["properties"]) - {"trunk"}
    assert "from" in play["properties"] and "from" in play["required"]
    assert "caller" not in play["properties"]
    body = document["paths"]["/voice/call/play"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": SCHEMA_REF + "PlayRequest"}


def test_a_recipient_may_name_only_a_configured_trunk():
    document = openapi_document(max_recipients=10, max_playlist_items=5, max_text_chars=100,
                                phone_numbers=True, trunk_names=("carrier-a", "carrier-b"))
    validator = _validator(document, "PlayRequest")
    body = {"recipients": [{"to": "+4930123456", "trunk": "carrier-b"}], "from": "me",
            "playlist": [{"pause": 1}]}
    assert list(validator.iter_errors(body)) == []
    body["recipients"][0]["trunk"] = "nosuch"
    assert not validator.is_valid(body)
    examples = document["paths"]["/voice/call/play"]["post"]["requestBody"]["content"][
        "application/json"]["examples"]
    assert examples["trunks"]["value"]["recipients"][1]["trunk"] == "carrier-a"


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
    other = _document(max_recipients=100_000, max_playlist_items=20)
    assert other["components"]["schemas"]["PlayRequest"]["properties"]["playlist"][
        "maxItems"] == 20


def _record(**call: Any) -> broadcasts.CallRecord:
    at = datetime(2026, 11, 26, 14, 10, 37, tzinfo=UTC)
    fields: dict[str, Any] = {"id": str(uuid.uuid4()), "broadcast_id": str(uuid.uuid4()),
                              "position": 0, "attempt": 1, "target": "sip:alice@192.0.2.10:5060",
                              "caller": "me", "state": "queued", "claimed_by": None,
                              "request_time": at}
    fields.update(call)
    return broadcasts.CallRecord(**fields)


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
     "q850_text": "Normal Clearing", "hangup_by": "service", "playback": ("done",),
     "speech": ({"engine": "flite"},)},
])
def test_call_record_lists_every_field_the_records_emit(document, call):
    record = call_record(_record(**call))
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
        ("/voice/call/play", "post"), ("/voice/call/play/bulk", "post"),
        ("/voice/call/status/{id}", "get"),
        ("/report/{report_id}", "get"), ("/report/{report_id}/summary", "get"),
        ("/voice/call/{request_id}", "delete"),
        ("/voice/calls", "get"), ("/media", "post"), ("/monitor", "get"), ("/trunks", "get"),
        ("/health", "get"), ("/ready", "get"), ("/openapi.json", "get"), ("/docs", "get"),
        ("/webhooks", "post"), ("/webhooks", "get"), ("/webhooks/{webhook_id}", "delete"),
        ("/webhooks/secret", "get"), ("/webhooks/secret/rotate", "post"),
        ("/webhooks/deliveries", "get"), ("/webhooks/deliveries/{delivery_id}/replay", "post"),
        ("/events", "get"), ("/voice/call/{request_id}/events", "get"), ("/metrics", "get")}
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
    docs = operations[("/docs", "get")]["responses"]["200"]["content"]
    assert list(docs) == ["text/html"] and docs["text/html"]["schema"] == {"type": "string"}


def test_the_envelope_examples_of_the_readme_match_the_response_schemas(document):
    accepted = {"code": 0, "status": 200, "data": "accepted", "request_id": "3f0c"}
    assert _validator(document, "Accepted").is_valid(accepted)
    error = {"code": 1001, "status": 400, "data": "invalid_request", "error": "invalid_request",
             "message": "recipients[3].to: must be a SIP URI",
             "details": [{"field": "recipients[3].to", "message": "must be a SIP URI"}]}
    assert _validator(document, "ErrorBody").is_valid(error)
    assert not _validator(document, "ErrorBody").is_valid({**error, "code": 0})
    assert not _validator(document, "Accepted").is_valid({**accepted, "code": 1})


def _examples(media: dict[str, Any]) -> list[Any]:
    named = [example["value"] for example in media.get("examples", {}).values()]
    return [media["example"], *named] if "example" in media else named


def test_every_operation_has_an_example_answer_that_fits_its_schema(document):
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            for media_type, media in response.get("content", {}).items():
                found = _examples(media)
                assert found, f"{method} {path} {status} {media_type} has no example"
                if media_type != "application/json":
                    continue
                validator = jsonschema.Draft202012Validator({**document, **media["schema"]})
                for example in found:
                    errors = [error.message for error in validator.iter_errors(example)]
                    assert errors == [], f"{method} {path} {status}: {errors}"
                    if status.startswith(("4", "5")):
                        assert example["status"] == int(status)


def test_every_request_example_is_what_the_service_accepts(document):
    validator = _validator(document, "PlayRequest")
    body = document["paths"]["/voice/call/play"]["post"]["requestBody"]["content"]
    examples = _examples(body["application/json"])
    assert len(examples) >= 2
    for example in examples:
        assert list(validator.iter_errors(example)) == []
        PlayRequest.model_validate(example)
    for _path, _method, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            assert "example" in parameter, parameter["name"]


@pytest.mark.parametrize(("body", "valid"), [
    ({"to": "sip:a@192.0.2.1", "from": "me", "playlist": [{"pause": 1}]}, True),
    ({"recipients": [{"to": "sip:a@192.0.2.1"}], "from": "me", "playlist": [{"pause": 1}]},
     True),
    ({"from": "me", "playlist": [{"pause": 1}]}, False),  # neither form
    ({"recipients": [], "from": "me", "playlist": [{"pause": 1}]}, False),
    ({"recipients": None, "to": None, "from": "me", "playlist": [{"pause": 1}]}, False),
    ({"to": "sip:a@192.0.2.1", "from": "", "playlist": [{"pause": 1}]}, False),
    ({"to": "sip:a@192.0.2.1", "from": "me", "playlist": [{"play": ""}]}, False),
    ({"to": "sip:a@192.0.2.1", "from": "me", "playlist": [{"say": " "}]}, False),
    ({"to": "sip:a@192.0.2.1", "from": "me", "playlist": [{"say": "hi {"}]}, False),
    ({"to": "sip:a@192.0.2.1", "from": "me", "variables": {"bad name": "x"},
      "playlist": [{"pause": 1}]}, False),
    ({"to": "sip:a@999.0.2.1", "from": "me", "playlist": [{"pause": 1}]}, False),
    ({"to": "sip:a@192.0.2.1", "from": "me", "playlist": [{"pause": 1}],
      "callback_url": "https://hooks.example/x", "callback_events": ["call.ended"]}, True),
    ({"to": "sip:a@192.0.2.1", "from": "me", "playlist": [{"pause": 1}],
      "callback_events": ["call.ended"]}, False),  # a filter without a URL
    ({"to": "sip:a@192.0.2.1", "from": "me", "playlist": [{"pause": 1}],
      "callback_url": None, "callback_events": ["call.ended"]}, False),  # ... or a null one
    ({"to": "sip:a@192.0.2.1", "from": "me", "playlist": [{"pause": 1}],
      "callback_url": "https://hooks.example/x", "callback_events": ["call.missed"]}, False),
    ({"to": "sip:a@192.0.2.1", "from": "me", "playlist": [{"pause": 1}],
      "callback_url": "file:///etc/passwd"}, False),
])
def test_the_schema_is_as_strict_as_the_service(document, body, valid):
    schema_says = _validator(document, "PlayRequest").is_valid(body)
    try:
        PlayRequest.model_validate(body)
        service_says = True
    except ValueError:
        service_says = False
    assert schema_says is service_says is valid


def test_phone_numbers_are_in_the_schema_only_with_a_trunk():
    body = {"to": "+15551234567", "from": "me", "playlist": [{"pause": 1}]}
    assert _validator(_document(phone_numbers=True), "PlayRequest").is_valid(body)
    assert not _validator(_document(phone_numbers=False), "PlayRequest").is_valid(body)


def test_the_docs_page_loads_only_its_own_files():
    sources = re.findall(r'(?:src|href)="([^"]+)"', PAGE)
    assert sources and all(source.startswith("/docs/assets/") for source in sources)
    assert "<script>" not in PAGE and "style=" not in PAGE  # nothing inline: CSP 'self' holds
    assert "//" not in START_SCRIPT.replace("http://", "").replace("https://", "")
    assert "http" not in START_SCRIPT and '"/openapi.json"' in START_SCRIPT
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    settings = without_asterisk(tmp_path, max_recipients=42, max_playlist_items=4)
    client: TestClient = await aiohttp_client(create_app(settings))
    return client


async def test_the_app_serves_the_document_and_the_page(client):
    response = await client.get("/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    served = await response.json()
    assert served == _document(max_recipients=42, max_playlist_items=4, phone_numbers=False)
    page = await client.get("/docs")
    assert page.status == 200 and page.content_type == "text/html"
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert await page.text() == PAGE


async def test_swagger_ui_comes_from_the_package_without_a_key(client):
    for name, content_type in ASSETS.items():
        response = await client.get(f"/docs/assets/{name}")
        assert response.status == 200, name
        assert response.content_type == content_type
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert len(await response.read()) > 100
    bundle = await (await client.get("/docs/assets/swagger-ui-bundle.js")).text()
    assert "SwaggerUIBundle" in bundle
    script = await client.get("/docs/assets/start.js")
    assert script.status == 200 and await script.text() == START_SCRIPT
    for other in ("index.html", "swagger-initializer.js", "..%2F..%2Fcore.py", "LICENSE"):
        assert (await client.get(f"/docs/assets/{other}")).status in (401, 404), other


async def test_a_405_names_the_allowed_methods(client):
    response = await client.request("TRACE", "/voice/call/play")
    assert response.status == 405 and response.headers["Allow"] == "POST"
    response = await client.request("PUT", "/docs")
    assert response.status == 405 and set(response.headers["Allow"].split(", ")) == {
        "GET", "HEAD"}
