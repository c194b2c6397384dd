"""Fifty writers at once on one account and one household: no 5xx, and a consistent log.

Concurrent identical commands once got a 500 (``dictionary changed size during
iteration``): the repository deep-copied a cached aggregate while another thread
fast-forwarded the same cached instance.  Here 50 threads send, at the same moment,
identical payments (with and without an ``Idempotency-Key``), different payments and
identical household steps to one township account and one household, on both stores.
Every answer must be 2xx, 409 or 422; afterwards each movement is stored once, the
balance is the funding less what was recorded, the read models agree with the
aggregate (cached or rebuilt from the events) and the hash tree verifies against the
records.  Threads switch every microsecond while the writers run, so a race shows up.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Any

from factories import (
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_registered_household,
    household_payment,
    run,
    sign,
)

from audit.verify import verify_log
from domain.fund_account import FundAccount
from projections import runner
from store.engines import engine_for

WRITERS = 50
HISTORY = 300  # payments on the account before the race
FUNDED = 10_000_000


def annual_review(year: int) -> dict[str, Any]:
    return {"year": year, "effective_date": "2025-12-01", "income_per_capita_fen": 500_000,
            "members_count": 2, "notes": ""}


def race(api: Any, requests: list[tuple[Any, dict, dict]]) -> list[Any]:
    """Send every request from its own thread, all released at once; the answers."""
    barrier = threading.Barrier(len(requests))
    answers: list[Any] = [None] * len(requests)

    def send(i: int, caller: Any, command: dict, headers: dict) -> None:
        barrier.wait(timeout=30)
        try:
            answers[i] = caller.post("/commands", json=command, headers=headers)
        except Exception as exc:  # noqa: BLE001 - an exception is a failed answer too
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return answers


def test_fifty_concurrent_writers_get_no_5xx_and_leave_a_consistent_log(
        store: Any, api: Any, world: World, close_read_models: None) -> None:
    app = world.app
    h1 = a_registered_household(world, "H1")
    h2 = a_registered_household(world, "H2")
    account = a_funded_account(world, TOWNSHIP, FUNDED)
    with app.batch():  # a busy account: its copy takes a while
        for i in range(HISTORY):
            run(world, "FundAccount.Disbursed", account,
                household_payment(h2, 100 + i, purpose="hh_housing"))
    officer = api.as_("fund_officer", COUNTY)
    village = api.as_("village_official", VILLAGE)
    app.repository.get(account)  # in the aggregate cache, as on a busy server
    app.repository.get(h1)

    same = sign(world, "FundAccount.Disbursed", account, household_payment(h1, 10_000))
    keyed = sign(world, "FundAccount.Disbursed", account, household_payment(h2, 20_000))
    review = sign(world, "Household.AnnualReviewRecorded", h1, annual_review(2025))
    different = [sign(world, "FundAccount.Disbursed", account,
                      household_payment(h1 if i % 2 else h2, 1_000 + i))
                 for i in range(20)]
    requests = ([(officer, same, {})] * 15
                + [(officer, keyed, {"Idempotency-Key": "race-keyed"})] * 10
                + [(village, review, {})] * 5
                + [(officer, c, {}) for c in different])
    assert len(requests) == WRITERS

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: a race shows up if there is one
    try:
        answers = race(api, requests)
    finally:
        sys.setswitchinterval(switch)

    failures = [a for a in answers if not hasattr(a, "status_code") or a.status_code >= 500]
    statuses = Counter(getattr(a, "status_code", "exception") for a in answers)
    print(f"\n{api.zhuisu.recorder.__class__.__module__}: {len(answers)} requests, "
          f"{len(failures)} 5xx, statuses {dict(statuses)}")
    assert not failures, [getattr(a, "text", repr(a)) for a in failures]
    assert set(statuses) <= {200, 201, 409, 422}, statuses
    for a in answers:
        if a.status_code in (409, 422):
            assert a.headers["content-type"] == "application/problem+json"
            assert a.json()["rule"] in ("ConcurrentWrite", "IdempotencyKeyInFlight"), a.json()

    # the log: each movement once, and exactly the ones answered as recorded
    stored = app.load(FundAccount, account)
    paid = {m: v["amount"] for m, v in stored.movements.items() if v["kind"] == "disbursed"}
    assert Counter(e.movement_id for e in app.stored_events(account)
                   if type(e).__name__ == "Disbursed") == Counter(paid.keys())
    sent = {c["content"]["movement_id"]: (c, []) for c in [same, keyed, *different]}
    for (_, command, _), answer in zip(requests, answers, strict=True):
        if command["step"] == "FundAccount.Disbursed":
            sent[command["content"]["movement_id"]][1].append(answer.status_code)
    for mid, (_, codes) in sent.items():
        assert (201 in codes or 200 in codes) == (mid in paid), (mid, codes)
        assert codes.count(201) <= 1 or mid == keyed["content"]["movement_id"], codes
    assert stored.balance == FUNDED - sum(paid.values())
    uncached = store.app_on(app.database_url).load(FundAccount, account)  # from the events
    assert (uncached.balance, uncached.movements) == (stored.balance, stored.movements)
    reviews = [e for e in app.stored_events(h1) if type(e).__name__ == "AnnualReviewRecorded"]
    assert len(reviews) == (1 if any(a.status_code in (200, 201) for a in answers[25:30])
                            else 0)

    # the read models and the hash tree agree with the log
    runner.catch_up(app)
    from projections import queries
    [row] = [r for r in queries.balances(engine_for(app.database_url), region_code=TOWNSHIP)
             if r["account_id"] == str(account)]
    assert row["balance_fen"] == stored.balance
    api.client.app.state.followers.catch_up()
    result = verify_log(api.client.app.state.audit)
    assert result.ok, result.message
