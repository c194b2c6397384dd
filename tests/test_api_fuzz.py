"""Fuzzing the HTTP API against its own OpenAPI document (schemathesis), bounded.

Every operation gets generated requests (valid and edge-case values of its parameters and
bodies, plus the document's examples) on a small world, as an administrator of every
region (``POST /commands`` as a village official of every region, so the domain is
reached).  No answer may be a server error, and every answer must be one the document
declares: its status, content type, headers and body schema.  The run is derandomised
(the same cases every time); raise ``ZHUISU_FUZZ_EXAMPLES`` to search further.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.http import create_app
from api.idempotency import HEADER as IDEMPOTENCY
from store.settings import Settings, build_app
from api_support import Api, api_on, bearer
from factories import (
    a_county_world,
    a_funded_account,
    a_registered_household,
    an_approved_project,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
# per operation (about 25); ZHUISU_FUZZ_EXAMPLES=200 for a longer hunt
EXAMPLES = int(os.environ.get("ZHUISU_FUZZ_EXAMPLES", "12"))

schema = schemathesis.openapi.from_dict(create_app().openapi())


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    env = pytest.MonkeyPatch()
    env.setenv("ZHUISU_LOG_KEY_FILE", str(tmp / "log-key"))  # the log routes sign with it
    zhuisu = build_app(Settings(database_url=f"sqlite:///{tmp}/z.db", id_pepper_file=tmp / "p"))
    world = a_county_world(zhuisu)
    a_registered_household(world)
    a_funded_account(world)
    an_approved_project(world)
    with api_on(zhuisu) as api:
        yield api, {"/commands": api.token("village_official")}
    zhuisu.close()
    env.undo()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_answer_as_documented(
        case: Any, fuzzed: tuple[Api, dict[str, str]]) -> None:
    api, tokens = fuzzed
    token = tokens.get(case.path, api.admin_token)
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items()
               if k.lower() != "idempotency-key"}
    # a fresh key each time: a generated key used twice would only ever meet the replay
    headers[IDEMPOTENCY] = uuid.uuid4().hex
    kwargs["headers"] = {**headers, **bearer(token)}
    kwargs.pop("cookies", None)
    response = api.client.request(**_httpx(kwargs))
    case.validate_response(response, checks=CHECKS)


def _httpx(kwargs: dict[str, Any]) -> dict[str, Any]:
    """requests-style keyword arguments (what schemathesis serialises) for httpx."""
    out = {k: kwargs[k] for k in ("method", "url", "headers", "params") if k in kwargs}
    if "json" in kwargs:
        out["json"] = kwargs["json"]
    elif "data" in kwargs:
        out["content"] = kwargs["data"]
    return out


def test_the_fuzzer_covers_every_operation() -> None:
    operations = {(op.method.upper(), op.path) for op in
                  (result.ok() for result in schema.get_all_operations())}
    assert len(operations) >= 24
    assert ("POST", "/commands") in operations and ("GET", "/access-log") in operations
