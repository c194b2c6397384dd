"""The HTTP API: thin routes, refusals as problem details, no ID number in any log line.

The client here is village V's official (a ``village_official`` token bound to V)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import structlog
from eventsourcing.persistence import IntegrityError
from fastapi.testclient import TestClient

from api.http import create_app
from runtime.logging import configure_logging, redact
from store.settings import Settings, build_app
from domain.application import Zhuisu
from domain.household import Household
from domain.identity import check_digit
from domain.official import Official
from domain.signing import SigningKey, b64

from api_support import api_on

START = dt.date(2020, 1, 1)
PROBLEM = "application/problem+json"


def id_number(n: int) -> str:
    first17 = f"11010119800101{n:03d}"
    return first17 + check_digit(first17)


@dataclass
class Village:
    app: Zhuisu
    keys: dict[str, SigningKey]

    def official_id(self, code: str) -> str:
        return str(Official.create_id(code))

    def application(self, code: str, person: int = 100) -> dict[str, Any]:
        return {"household_code": code, "village_code": "V", "effective_date": "2025-01-05",
                "head_name": "张三", "main_cause": "illness", "secondary_causes": [],
                "members": [{"name": "张三", "relation": "head",
                             "id_number_hash": self.app.hash_id(id_number(person))}],
                "income_per_capita_fen": 200_000, "bank_account_hash": None}

    def signed(self, step: str, subject: Any, content: dict[str, Any],
               signer: str = "acc", role: str = "preparer") -> dict[str, Any]:
        sig = self.keys[signer].sign_step(step, subject, content, self.official_id(signer), role)
        return {"step": step, "subject": str(subject), "content": content,
                "signatures": [sig.as_dict()]}

    def applied(self, code: str, person: int = 100) -> dict[str, Any]:
        return self.signed("Household.Applied", Household.create_id(code),
                           self.application(code, person))


def a_village(app: Zhuisu) -> Village:
    """Province → … → village V, its committee, an accountant and a party secretary."""
    for code, level, parent in [("P", "province", None), ("C", "city", "P"),
                                ("K", "county", "C"), ("T", "township", "K"),
                                ("V", "village", "T")]:
        app.create_region(code, code, level, parent)
    app.establish_unit("VC", "村委会", "village_committee", "V")
    keys = {}
    for n, (code, kind) in enumerate([("acc", "village_accountant"),
                                      ("sec", "village_party_secretary")]):
        app.register_official(code, code, "VC", id_number(n))
        app.take_position(code, kind, "V", START)
        keys[code] = SigningKey.from_seed(code.encode())
        app.register_key(code, b64(keys[code].public_bytes), START)
    return Village(app, keys)


@pytest.fixture
def village(tmp_path: Path) -> Village:
    return a_village(build_app(Settings(database_url=f"sqlite:///{tmp_path}/z.db",
                                        id_pepper_file=tmp_path / "pepper")))


@pytest.fixture
def client(village: Village) -> Iterator[TestClient]:
    with api_on(village.app) as api:
        api.client.headers["Authorization"] = f"Bearer {api.token('village_official', 'V')}"
        yield api.client


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """What the server would write, in production (JSON) format."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buf = io.StringIO()
    configure_logging("json", "INFO", buf)
    yield buf
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


def events_in_store(client: TestClient) -> int:
    return client.get("/health").json()["events"]


def test_health_reports_the_store_and_its_event_count(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    # 5 regions, 1 unit; per official: registered, position taken (and its holder recorded
    # on the village, for 一案双查), key registered
    assert r.json() == {"status": "ok", "store": "sqlite", "events": 5 + 1 + 2 * 4}


def test_openapi_describes_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/commands", "/households/{household_id}", "/households/by-code/{code}",
            "/accounts/{account_id}", "/officials/{official_id}", "/steps", "/households",
            "/accounts", "/officials", "/projects", "/projects/{project_id}", "/regions",
            "/units", "/officials/{official_id}/keys", "/access-log"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_a_signed_application_is_recorded_and_its_retry_is_not(client: TestClient,
                                                                village: Village) -> None:
    command = village.applied("H1")
    first = client.post("/commands", json=command, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    answer = first.json()
    receipt = answer.pop("receipt")  # what it proves: tests/test_receipts.py
    assert answer == {"step": "Household.Applied",
                      "subject": str(Household.create_id("H1")), "recorded": True}
    assert receipt["checkpoint"] is not None and len(receipt["entries"]) == 1
    assert first.headers["Idempotency-Key"] == "k-1"
    assert first.headers["Location"] == f"/households/{Household.create_id('H1')}"
    events = events_in_store(client)

    retry = client.post("/commands", json=command, headers={"Idempotency-Key": "k-1"})
    assert (retry.status_code, retry.json()) == (201, first.json())  # the first answer again
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.headers["Location"] == first.headers["Location"]

    without_key = client.post("/commands", json=command)  # the domain knows it, too
    assert without_key.status_code == 200
    assert without_key.json()["recorded"] is False
    assert events_in_store(client) == events


def test_a_forged_signature_is_refused_naming_rule_and_field(client: TestClient,
                                                             village: Village) -> None:
    command = village.applied("H2")
    command["content"]["income_per_capita_fen"] = 100  # changed after signing
    r = client.post("/commands", json=command)
    assert r.status_code == 403
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["rule"] == body["title"] == "SignatureInvalid"
    assert body["type"] == "https://zhuisu.example/problems/SignatureInvalid"
    assert body["field"] == "signatures[0].signature"
    assert body["status"] == 403


def test_an_unknown_step_is_refused_naming_the_step_field(client: TestClient,
                                                          village: Village) -> None:
    r = client.post("/commands", json={**village.applied("H3"), "step": "Household.Bribed"})
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert (r.json()["rule"], r.json()["field"]) == ("InvalidInput", "step")


def test_a_malformed_envelope_names_the_field_path(client: TestClient, village: Village) -> None:
    command = village.applied("H3")
    command["signatures"][0]["role"] = "boss"
    r = client.post("/commands", json=command)
    assert r.status_code == 422
    assert (r.json()["rule"], r.json()["field"]) == ("InvalidInput", "signatures[0].role")


def test_a_household_shows_its_events_and_their_signatures(client: TestClient,
                                                           village: Village) -> None:
    client.post("/commands", json=village.applied("H1"))
    hid = Household.create_id("H1")
    r = client.get(f"/households/{hid}")
    assert r.status_code == 200
    h = r.json()
    assert (h["code"], h["status"], h["village_code"], h["members_count"]) == ("H1", "applied",
                                                                               "V", 1)
    [event] = h["events"]
    assert (event["position"], event["type"]) == (1, "Household.Applied")
    assert event["fields"]["household_code"] == "H1"
    assert dt.datetime.fromisoformat(event["recorded_at"]).tzinfo is not None
    [sig] = event["signatures"]
    assert sig["official_id"] == village.official_id("acc")
    assert (sig["role"], sig["position"]) == ("preparer", "village_accountant")
    assert sig["key_id"] == village.keys["acc"].key_id
    assert client.get("/households/by-code/H1").json()["id"] == str(hid)


def test_an_unknown_household_is_a_404_problem(client: TestClient) -> None:
    r = client.get(f"/households/{Household.create_id('nobody')}")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    assert (r.json()["rule"], r.json()["field"]) == ("NotFound", "household_id")


def test_an_official_shows_positions_and_keys_but_no_identity_hashes(
        client: TestClient, village: Village) -> None:
    village.app.declare_relative("acc", id_number(7), "spouse")
    r = client.get(f"/officials/{village.official_id('acc')}")
    assert r.status_code == 200
    assert [p["kind"] for p in r.json()["positions"]] == ["village_accountant"]
    assert [k["key_id"] for k in r.json()["keys"]] == [village.keys["acc"].key_id]
    text = r.text
    assert "relatives" not in text and "hash" not in text


def test_the_step_catalogue_names_fields_and_signers(client: TestClient) -> None:
    steps = client.get("/steps").json()
    applied = steps["Household.Applied"]
    assert "household_code" in applied["fields"]
    assert applied["signers"] == [{"role": "preparer", "level": "village",
                                   "positions": ["village_accountant", "work_team_member"]}]
    assert {s["role"] for s in steps["FundAccount.Disbursed"]["signers"]} == {
        "preparer", "reviewer", "approver"}


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers[
        "X-Request-ID"] == "abc-123"
    assert len(client.get("/health").headers["X-Request-ID"]) == 32


def test_no_id_number_reaches_the_logs(client: TestClient, village: Village,
                                       log: io.StringIO) -> None:
    number = id_number(42)
    # The number as a household code: echoed by a refusal's detail and by a request path.
    client.post("/commands", json=village.applied(number, person=1))
    conflicting = village.applied(number, person=2)
    assert client.post("/commands", json=conflicting).status_code == 409
    client.get(f"/households/by-code/{number}")
    # ...and as a clear member field beside the hash (the domain drops it unstored).
    body = village.applied("H9")
    body["content"]["members"][0]["id_number"] = number
    client.post("/commands", json=body)

    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert any(line.get("route") == "/commands" and line.get("rule") == "AlreadyExists"
               for line in lines)
    assert "[id-number]" in log.getvalue()
    assert number not in log.getvalue() and number[:17] not in log.getvalue()


def test_redaction_masks_secret_keys_at_any_depth() -> None:
    event = {"event": "x", "headers": {"Authorization": "Bearer abc"},
             "signatures": [{"signature": "AAAA"}], "key": {"private_key": "s3cr3t"},
             "note": f"owner {id_number(5).lower()} ok", "count": 3}
    out = redact(None, "info", copy.deepcopy(event))
    assert out["headers"]["Authorization"] == out["signatures"] == "[redacted]"
    assert out["key"]["private_key"] == "[redacted]"
    assert out["note"] == "owner [id-number] ok"
    assert out["count"] == 3


def test_an_empty_store_gets_the_small_demo_at_start_when_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from demo import build as county

    calls = []

    def build_demo(app: Zhuisu, size: str) -> SimpleNamespace:
        calls.append(size)
        return SimpleNamespace(households=0, officials=0, events_written=0, seconds=0.0)

    monkeypatch.setattr(county, "build_demo", build_demo)  # the real demo is another test's job
    empty = build_app(Settings(database_url=f"sqlite:///{tmp_path}/e.db",
                               id_pepper_file=tmp_path / "pepper"))
    with TestClient(create_app(zhuisu=empty, seed=county.load_demo_if_empty)):
        assert calls == ["small"]
    with TestClient(create_app(zhuisu=a_village(empty).app, seed=county.load_demo_if_empty)):
        assert calls == ["small"]  # a store with events is left alone


def test_a_concurrent_write_is_a_409_to_retry(client: TestClient, village: Village,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def lost_race(command: Any) -> Any:
        raise IntegrityError("UNIQUE constraint failed: stored_events")

    monkeypatch.setattr(village.app, "execute", lost_race)
    r = client.post("/commands", json=village.applied("H1"))
    assert r.status_code == 409
    assert r.json()["rule"] == "ConcurrentWrite" and "retry" in r.json()["detail"]
