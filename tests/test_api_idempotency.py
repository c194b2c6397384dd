"""Idempotent and concurrent-safe writes: a retried request is answered, not re-run; two
writers racing on one aggregate never lose an update."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from access.tables import open_engine
from api.idempotency import (
    IdempotencyMiddleware,
    IdempotencyRecords,
    Outcome,
    StoredAnswer,
    request_hash,
)
from api.problems import Problem
from access.roles import ApiRole, Principal
from api_support import NOW, api_on
from domain.application import Zhuisu
from factories import (
    COUNTY,
    TOWNSHIP,
    World,
    a_funded_account,
    a_registered_household,
    household_payment,
    sign,
)


def events(api: Any) -> int:
    return api.client.get("/health").json()["events"]


def a_payment(world: World, amount: int = 30_000, code: str = "H1") -> tuple[Any, dict]:
    """A funded township account (1,000,000 fen) and a signed payment to a household."""
    hid = a_registered_household(world, code)
    account = world.account(TOWNSHIP)
    if not world.balance(account):
        a_funded_account(world, TOWNSHIP, 1_000_000)
    return account, sign(world, "FundAccount.Disbursed", account, household_payment(hid, amount))


def test_the_same_disbursement_sent_twice_pays_once(api: Any, world: World) -> None:
    account, command = a_payment(world)
    officer = api.as_("fund_officer", COUNTY)
    key = {"Idempotency-Key": "pay-H1-2025-03-01"}

    first = officer.post("/commands", json=command, headers=key)
    assert first.status_code == 201, first.text
    stored = events(api)
    again = officer.post("/commands", json=command, headers=key)

    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Idempotency-Key"] == "pay-H1-2025-03-01"
    assert again.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers
    assert events(api) == stored
    assert world.balance(account) == 1_000_000 - 30_000


def test_without_a_key_the_resent_disbursement_still_pays_once(api: Any, world: World) -> None:
    account, command = a_payment(world)
    officer = api.as_("fund_officer", COUNTY)
    assert officer.post("/commands", json=command).status_code == 201
    again = officer.post("/commands", json=command)  # the same movement id: the domain knows it
    assert (again.status_code, again.json()["recorded"]) == (200, False)
    assert world.balance(account) == 1_000_000 - 30_000


def test_the_same_key_with_a_different_request_is_refused(api: Any, world: World) -> None:
    account, command = a_payment(world)
    _, other = a_payment(world, 50_000, code="H2")
    officer = api.as_("fund_officer", COUNTY)
    key = {"Idempotency-Key": "k-7"}
    assert officer.post("/commands", json=command, headers=key).status_code == 201
    stored = events(api)

    r = officer.post("/commands", json=other, headers=key)
    assert r.status_code == 422
    assert (r.json()["rule"], r.json()["field"]) == ("IdempotencyKeyReused", "Idempotency-Key")
    assert officer.post("/officials", json={}, headers=key).json()["rule"] == (
        "IdempotencyKeyReused")  # another route is another request, too
    assert events(api) == stored
    assert world.balance(account) == 1_000_000 - 30_000


def test_a_key_belongs_to_the_token_that_used_it(api: Any, world: World) -> None:
    account, command = a_payment(world)
    _, other = a_payment(world, 50_000, code="H2")
    key = {"Idempotency-Key": "k-1"}
    assert api.as_("fund_officer", COUNTY).post("/commands", json=command,
                                                headers=key).status_code == 201
    assert api.as_("fund_officer", COUNTY).post("/commands", json=other,
                                                headers=key).status_code == 201
    assert world.balance(account) == 1_000_000 - 80_000


def test_a_refusal_is_answered_again_but_a_lost_race_is_not_kept(api: Any, world: World) -> None:
    account, command = a_payment(world, 2_000_000)  # more than the account holds
    officer = api.as_("fund_officer", COUNTY)
    key = {"Idempotency-Key": "too-much"}
    first = officer.post("/commands", json=command, headers=key)
    assert first.json()["rule"] == "InsufficientFunds"
    again = officer.post("/commands", json=command, headers=key)
    assert (again.status_code, again.content) == (first.status_code, first.content)

    records: IdempotencyRecords = api.client.app.state.idempotency
    token_id = api.tokens.authenticate(officer.token).token_id
    digest = request_hash("POST", "/commands", "", json.dumps(command).encode())
    records.begin(token_id, "in-flight", digest, NOW.replace(year=2100))  # still running
    r = officer.post("/commands", json=command, headers={"Idempotency-Key": "in-flight"})
    assert (r.status_code, r.json()["rule"]) == (409, "IdempotencyKeyInFlight")


def test_a_malformed_key_is_refused_naming_the_header(api: Any, world: World) -> None:
    _, command = a_payment(world)
    officer = api.as_("fund_officer", COUNTY)
    for key in ("has space", "x" * 201):
        r = officer.post("/commands", json=command, headers={"Idempotency-Key": key})
        assert r.status_code == 422
        assert (r.json()["rule"], r.json()["field"]) == ("InvalidInput", "Idempotency-Key")


def test_an_administrative_write_is_idempotent_too(api: Any, world: World) -> None:
    body = {"region_code": TOWNSHIP, "fund_source": "provincial", "name": "省级资金"}
    key = {"Idempotency-Key": "open-provincial"}
    first = api.client.post("/accounts", json=body, headers=key)
    assert first.status_code == 201, first.text
    assert api.client.post("/accounts", json=body, headers=key).content == first.content
    assert api.client.post("/accounts", json=body).json()["rule"] == "AlreadyExists"


def one_save_waits_for(barrier: threading.Barrier, app: Zhuisu) -> None:
    """The app's next save waits until the other writer has reached its own save too."""
    save: Callable[..., Any] = app.save

    def save_together(*aggregates: Any, **kw: Any) -> Any:
        app.save = save  # type: ignore[method-assign]  # later saves go straight through
        barrier.wait(timeout=20)
        return save(*aggregates, **kw)

    app.save = save_together  # type: ignore[method-assign]


def test_concurrent_payments_from_one_account_lose_no_update(store: Any, app: Zhuisu,
                                                             world: World, api: Any) -> None:
    account, pay_h1 = a_payment(world, 30_000, "H1")
    _, pay_h2 = a_payment(world, 50_000, "H2")
    other_app = store.app_on(app.database_url)  # a second server on the same database
    with api_on(other_app) as other_api:
        first, second = api.as_("fund_officer", COUNTY), other_api.as_("fund_officer", COUNTY)
        barrier = threading.Barrier(2)
        one_save_waits_for(barrier, app)
        one_save_waits_for(barrier, other_app)
        answers: dict[str, Any] = {}

        def send(name: str, caller: Any, command: dict, key: str) -> None:
            answers[name] = caller.post("/commands", json=command,
                                        headers={"Idempotency-Key": key})

        threads = [threading.Thread(target=send, args=("h1", first, pay_h1, "k-h1")),
                   threading.Thread(target=send, args=("h2", second, pay_h2, "k-h2"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

        statuses = sorted(a.status_code for a in answers.values())
        assert statuses == [201, 409], {k: a.text for k, a in answers.items()}
        [(loser, lost)] = [(k, a) for k, a in answers.items() if a.status_code == 409]
        assert lost.json()["rule"] == "ConcurrentWrite"
        assert "retry" in lost.json()["detail"]
        winner_amount = 30_000 if loser == "h2" else 50_000
        assert world.balance(account) == 1_000_000 - winner_amount

        retry = (second, pay_h2, "k-h2") if loser == "h2" else (first, pay_h1, "k-h1")
        again = retry[0].post("/commands", json=retry[1], headers={"Idempotency-Key": retry[2]})
        assert again.status_code == 201, again.text  # the 409 was not kept for the key
        assert world.balance(account) == 1_000_000 - 80_000


@pytest.mark.parametrize("status,rule,then", [(201, None, Outcome.REPLAY),
                                              (409, "ConcurrentWrite", Outcome.STARTED)])
def test_an_answer_leaves_only_once_its_key_is_settled(tmp_path: Path, status: int,
                                                       rule: str | None, then: Outcome) -> None:
    """A client that retries the moment it has an answer finds the key stored or released,
    never still in flight (found by bench/api.py: a retry after a 409 met the key in flight)."""
    records = IdempotencyRecords(open_engine(f"sqlite:///{tmp_path}/keys.db"))
    caller = Principal("t1", "officer", ApiRole.FUND_OFFICER, None, None)
    digest = request_hash("POST", "/commands", "", b"{}")
    seen: list[Outcome] = []

    async def endpoint(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        if rule:
            scope["state"]["problem"] = Problem(rule, status, "retry")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def client(message: dict) -> None:
        if message["type"] == "http.response.body":  # the client has its answer: retry now
            seen.append(records.begin("t1", "k", digest, NOW)[0])

    async def caller_of(_: Any) -> Principal:
        return caller

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    middleware = IdempotencyMiddleware(endpoint, authenticate=caller_of, clock=lambda: NOW)
    scope = {"type": "http", "method": "POST", "path": "/commands", "query_string": b"",
             "headers": [(b"idempotency-key", b"k")], "state": {},
             "app": SimpleNamespace(state=SimpleNamespace(idempotency=records))}
    asyncio.run(middleware(scope, receive, client))
    assert seen == [then]


def test_a_method_the_path_lacks_is_405_and_leaves_its_key_unused(api: Any, world: World) -> None:
    """An undeclared method is refused by routing (405 with every method of the path in
    ``Allow``) before any key is taken: the same key then serves the real request."""
    account, command = a_payment(world)
    officer = api.as_("fund_officer", COUNTY)
    key = {"Idempotency-Key": "pay-H1-put-by-mistake"}
    stored = events(api)

    wrong = officer.request("PUT", "/commands", json=command, headers=key)
    assert wrong.status_code == 405, wrong.text
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json()["rule"] == "MethodNotAllowed"
    assert wrong.headers["Allow"] == "POST"
    assert events(api) == stored

    right = officer.post("/commands", json=command, headers=key)
    assert right.status_code == 201, right.text
    assert "Idempotent-Replayed" not in right.headers
    assert events(api) == stored + 1


def test_a_first_answer_is_kept_for_its_retention_then_the_key_is_free(store: Any) -> None:
    records = IdempotencyRecords(open_engine(store.new_database_url()), keep=dt.timedelta(days=7))
    first = request_hash("POST", "/commands", "", b'{"a": 1}')
    other = request_hash("POST", "/commands", "", b'{"a": 2}')
    answer = StoredAnswer(201, [("content-type", "application/json")], b"{}")
    assert records.begin("t1", "k", first, NOW)[0] is Outcome.STARTED
    records.complete("t1", "k", answer)

    six_days = NOW + dt.timedelta(days=6, hours=23)
    assert records.begin("t1", "k", first, six_days) == (Outcome.REPLAY, answer)
    assert records.begin("t1", "k", other, six_days) == (Outcome.MISMATCH, None)
    assert records.begin("t1", "k", other, NOW + dt.timedelta(days=7)) == (Outcome.STARTED, None)

    # the hourly purge deletes expired answers only, never a request still running
    records.begin("t1", "done", first, NOW)
    records.complete("t1", "done", answer)
    records.begin("t1", "running", first, NOW)
    assert records.purge(NOW + dt.timedelta(days=8)) == 1
    later = NOW + dt.timedelta(days=8)
    assert records.begin("t1", "done", other, later)[0] is Outcome.STARTED
    assert records.begin("t1", "running", first, later)[0] is Outcome.STARTED  # timed out
    with pytest.raises(ValueError):
        IdempotencyRecords(records.engine, keep=dt.timedelta(0))
