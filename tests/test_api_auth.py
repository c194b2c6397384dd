"""Authentication: bearer tokens, kept only as their SHA-256; no endpoint but /health (and
the documentation) answers without one; the first start writes an administrator's token."""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from access.tables import tokens as token_table
from api.deps import is_public
from api.http import api_routes, check_every_route_is_guarded, create_app
from store.settings import Settings, build_app
from api_support import bearer

ANONYMOUS = {"/health", "/log/public-key"}  # the only endpoints without a token
DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def concrete(path: str) -> str:
    """A route's path with every parameter filled in."""
    path = re.sub(r"\{[^}:]+:int\}", "1", path)
    return re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)


def test_every_endpoint_but_health_and_the_log_key_needs_a_bearer_token(api: Any) -> None:
    every = [route for route in api_routes(api.client.app.routes)
             if route.path not in DOCUMENTATION]
    routes = [route for route in every if not route.path.startswith("/console")]
    assert {route.path for route in routes if is_public(route.endpoint)} <= ANONYMOUS | {"/"}
    guarded = [(method, route.path) for route in routes if not is_public(route.endpoint)
               for method in route.methods]
    assert len(guarded) >= 20
    for method, path in guarded:
        r = api.anonymous(method, concrete(path), json={})
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert (r.json()["rule"], r.json()["field"]) == ("NotAuthenticated", "Authorization")
    assert api.anonymous("GET", "/health").status_code == 200
    # the console's pages want a signed-in person instead: the sign-in page, nothing else
    console = [route for route in every if route.path.startswith("/console")]
    assert {route.path for route in console if is_public(route.endpoint)} == {"/console/login"}
    for route in console:
        if is_public(route.endpoint):
            continue
        for method in route.methods:
            r = api.anonymous(method, concrete(route.path), data={}, follow_redirects=False)
            assert r.status_code == 303, (method, route.path, r.text)
            assert r.headers["location"].startswith("/console/login?next="), (method, route.path)


@pytest.mark.parametrize("authorization,detail", [
    ("Basic dXNlcjpwYXNz", "expected Authorization: Bearer"),
    ("Bearer ", "expected Authorization: Bearer"),
    ("Bearer zs_not-a-token-anyone-was-given", "unknown or revoked"),
    ("Bearer something-else-entirely", "unknown or revoked"),
])
def test_a_malformed_or_unknown_token_is_refused(api: Any, authorization: str,
                                                 detail: str) -> None:
    r = api.client.get("/steps", headers={"Authorization": authorization})
    assert r.status_code == 401 and detail in r.json()["detail"]


def test_a_revoked_token_stops_working_at_once(api: Any) -> None:
    token = api.token("reviewer")
    assert api.client.get("/steps", headers=bearer(token)).status_code == 200
    [record] = [t for t in api.tokens.list() if t.name == "reviewer@all"]
    api.tokens.revoke(record.id, record.created_at)
    r = api.client.get("/steps", headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert [t.id for t in api.tokens.list(include_revoked=True) if t.revoked_at] == [record.id]


def test_tokens_are_stored_only_as_their_sha256(api: Any) -> None:
    token = api.token("inspector")
    with api.tokens.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(token_table))]
    assert token.startswith("zs_") and len(token) >= 40
    assert not any(token in str(value) for row in rows for value in row.values())
    assert hashlib.sha256(token.encode()).hexdigest() in [row["token_hash"] for row in rows]


def test_a_route_that_declares_no_guard_stops_the_app_from_starting() -> None:
    api = create_app()
    forgotten = APIRouter()

    @forgotten.get("/cases/{case_id}")
    def get_case(case_id: str) -> dict[str, str]:
        return {"case_id": case_id}

    api.include_router(forgotten)
    with pytest.raises(RuntimeError, match="/cases/{case_id} declares neither a guard"):
        check_every_route_is_guarded(api)
    check_every_route_is_guarded(FastAPI())  # nothing to guard


def start(tmp_path: Path, **settings: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/z.db", id_pepper_file=tmp_path / "pepper",
                    admin_token_file=tmp_path / "var" / "admin-token", **settings)


def test_the_first_start_writes_an_administrators_token_once(tmp_path: Path) -> None:
    s = start(tmp_path)
    with TestClient(create_app(s, bootstrap_admin=True)) as client:
        token = s.admin_token_file.read_text().strip()
        assert stat.S_IMODE(s.admin_token_file.stat().st_mode) == 0o600
        r = client.post("/regions", headers=bearer(token),
                        json={"code": "P", "name": "P", "level": "province"})
        assert r.status_code == 201, r.text  # an administrator of every region
    with TestClient(create_app(s, bootstrap_admin=True)) as client:
        assert s.admin_token_file.read_text().strip() == token  # not made again
        [record] = client.app.state.tokens.list()
        client.app.state.tokens.revoke(record.id, record.created_at)
    with TestClient(create_app(s, bootstrap_admin=True)) as client:
        fresh = s.admin_token_file.read_text().strip()  # none live: a new one replaces it
        assert fresh != token
        assert client.get("/steps", headers=bearer(fresh)).status_code == 200


def test_no_token_is_written_unless_asked(tmp_path: Path) -> None:
    s = start(tmp_path)
    with TestClient(create_app(s)):
        assert not s.admin_token_file.exists()


def test_the_documentation_can_be_hidden(tmp_path: Path) -> None:
    with TestClient(create_app(start(tmp_path))) as client:
        assert client.get("/openapi.json").status_code == 200
    hidden = start(tmp_path, public_docs=False)
    with TestClient(create_app(hidden, zhuisu=build_app(hidden))) as client:
        assert client.get("/openapi.json").status_code == 404
        assert client.get("/docs").status_code == 404
        assert client.get("/health").status_code == 200


def test_the_openapi_document_declares_bearer_auth_and_problem_answers(api: Any) -> None:
    doc = api.client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"][
            "securitySchemes"]["bearer"]["description"]}
    steps = doc["paths"]["/steps"]["get"]
    assert steps["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/health"]["get"]
    assert steps["responses"]["401"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemOut"}}}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
