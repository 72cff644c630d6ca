"""The server against its own OpenAPI document (``GET /openapi.json``), by schemathesis: for every
operation the document lists, requests generated from its schemas (bounded), each answer checked
against the document: no server error, a documented status code, the documented content type, a
body that matches its schema. Runs last (file name): the generated requests erase random tenants
and subjects on the test stack."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import Stack


_described = os.environ.get("PYTEST_SEALCACHE_STACK")
if not _described:
    pytest.fail(
        "PYTEST_SEALCACHE_STACK is not set: run these tests through `cargo xtask test`",
        pytrace=False,
    )
_stack = json.loads(Path(_described).read_text())
# Loaded when the module is collected: the server is up by then (`cargo xtask test` starts it).
schema = schemathesis.openapi.from_url(_stack["api"] + "/openapi.json")


def test_the_document_is_openapi_3_1_and_lists_every_endpoint(stack: Stack) -> None:
    import httpx

    document = httpx.get(stack.api + "/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete")
    }
    assert operations == {
        ("GET", "/health"),
        ("GET", "/openapi.json"),
        ("GET", "/metrics"),
        ("GET", "/internal/cache/security-status"),
        ("GET", "/internal/cache/metrics"),
        ("POST", "/internal/cache/invalidate"),
        ("POST", "/v1/cache/lookup"),
        ("PUT", "/v1/cache/entries"),
        ("DELETE", "/v1/cache/leases/{token}"),
        ("POST", "/v1/cache/leases/{token}/events"),
        ("DELETE", "/v1/subjects/{subject}"),
        ("DELETE", "/v1/tenants/{tenant}"),
    }
    # The status the server serves is the documented one, checked typed on the Rust side too.
    status = stack.call("GET", "/internal/cache/security-status")
    assert status[0] == 200
    assert "SecurityStatusResponse" in document["components"]["schemas"]


@schema.parametrize()
# No example database: nothing is written into the checkout.
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_answer_matches_the_document(case: Any) -> None:
    case.call_and_validate(
        base_url=_stack["api"],
        # Both ways to present the key: a generated `Authorization` would otherwise be a wrong
        # key (and, repeated, the throttle's 429 for every later request).
        headers={"X-API-Key": _stack["api_key"], "Authorization": "Bearer " + _stack["api_key"]},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
