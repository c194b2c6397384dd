"""No stored event, however odd, stops a projection.

One signed payment dated 9999-12-31 once overflowed a red-flag rule and stopped every
projection for good, on both stores: reads answered 500 and ``zhuisu project rebuild``
failed the same way.  Here odd events are written straight into the store, behind the
domain's back — a payment dated 9999-12-31, a receipt whose amount is text, a state that
is not JSON at all — among good ones.  The projections catch up past them, reads answer
200, a rebuild completes, and each failure is visible: in ``projection_failures``
(``GET /projections/lag``), in ``/health`` and in the log.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from factories import (
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_registered_household,
    household_payment,
    run,
)
from structlog.testing import capture_logs

from domain.application import Zhuisu
from projections import runner

pytestmark = pytest.mark.usefixtures("close_read_models")


def stored(app: Zhuisu, aggregate_id: UUID, step: str) -> tuple[str, dict[str, Any]]:
    """The topic and decoded fields of the aggregate's last stored ``step`` event."""
    record = [r for r in app.recorder.select_events(aggregate_id)
              if r.topic.endswith(":" + step)][-1]
    return record.topic, app.mapper.transcoder.decode(record.state)


def write_raw(app: Zhuisu, aggregate_id: UUID, topic: str, state: bytes) -> int:
    """Append a record to an aggregate, bypassing every check; its log position."""
    versions = [r.originator_version for r in app.recorder.select_events(aggregate_id)]
    app.recorder.insert_events([StoredEvent(aggregate_id, max(versions, default=0) + 1,
                                            topic, state)])
    return app.recorder.max_notification_id()


def odd_events(app: Zhuisu, world: World) -> dict[str, int]:
    """A payment dated 9999-12-31, a receipt of 'lots' fen, states that are not JSON."""
    township, county = world.account(TOWNSHIP), world.account(COUNTY)
    topic, payment = stored(app, township, "FundAccount.Disbursed")
    far = write_raw(app, township, topic, app.mapper.transcoder.encode(
        {**payment, "movement_id": str(uuid.uuid4()), "effective_date": dt.date(9999, 12, 31)}))
    topic, receipt = stored(app, county, "FundAccount.Received")
    text = write_raw(app, county, topic, app.mapper.transcoder.encode(
        {**receipt, "movement_id": str(uuid.uuid4()), "amount_fen": "lots"}))
    garbled = write_raw(app, uuid.uuid4(), topic, b"\xff this is not JSON")
    applied = write_raw(app, uuid.uuid4(), "domain.household:Household.Applied", b"[1, 2")
    return {"far": far, "text": text, "garbled": garbled, "applied": applied}


@pytest.fixture
def odd(app: Zhuisu, world: World) -> dict[str, Any]:
    """A county with money, then the odd events, then a good payment after them."""
    hid = a_registered_household(world, "H1")
    a_funded_account(world, COUNTY, 5_000_000)
    township = a_funded_account(world, TOWNSHIP, 1_000_000)
    run(world, "FundAccount.Disbursed", township, household_payment(hid, 10_000))
    positions = odd_events(app, world)
    run(world, "FundAccount.Disbursed", township,
        household_payment(hid, 20_000, purpose="hh_housing"))
    return {"household": hid, "township": township, **positions}


def failures_by_position(app: Zhuisu) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for name, row in runner.lag(app, failures=100).items():
        for f in row["failures"]:
            found.setdefault(f["position"], set()).add(name)
    return found


def test_projections_catch_up_past_odd_events_and_record_them(app: Zhuisu,
                                                              odd: dict[str, Any]) -> None:
    with capture_logs() as logs:
        done = runner.catch_up(app)

    head = app.recorder.max_notification_id()
    assert set(done.values()) == {head}  # every projection reached the end of the log
    failed = failures_by_position(app)
    assert {odd["far"], odd["text"], odd["garbled"], odd["applied"]} <= set(failed), failed
    assert "register" in failed[odd["applied"]]
    assert "flags" in failed[odd["far"]]  # the rule whose window overflowed
    assert "balances" in failed[odd["text"]]
    lag = runner.lag(app, failures=10)
    assert lag["balances"]["lag"] == 0 and lag["balances"]["failed"] >= 2
    [garbled] = [f for f in lag["balances"]["failures"] if f["position"] == odd["garbled"]]
    assert garbled["step"] == "FundAccount.Received"
    assert garbled["error"].startswith("cannot decode the stored state")
    [far] = [f for f in lag["flags"]["failures"] if f["position"] == odd["far"]]
    assert far["error"] == "OverflowError: date value out of range"
    assert any(e["event"] == "projection skipped an event it cannot take"
               and e["position"] == odd["far"] and e["projection"] == "flags"
               and e["log_level"] == "error" for e in logs), logs

    # the good payment after the odd events is in the read models
    from projections import queries
    from store.engines import engine_for

    [row] = [r for r in queries.balances(engine_for(app.database_url), region_code=TOWNSHIP)
             if r["account_id"] == str(odd["township"])]
    assert row["paid_out_fen"] >= 30_000


def test_a_rebuild_completes_and_finds_the_same_failures(app: Zhuisu,
                                                         odd: dict[str, Any]) -> None:
    runner.catch_up(app)
    before = failures_by_position(app)
    done = runner.rebuild(app)
    assert set(done.values()) == {app.recorder.max_notification_id()}
    assert failures_by_position(app) == before


def test_reads_answer_200_and_show_the_failures(api: Any, world: World,
                                                odd: dict[str, Any]) -> None:
    for path in ("/balances", f"/balances/summary?region={TOWNSHIP}", "/flags",
                 f"/households?village={VILLAGE}",
                 f"/villages/{VILLAGE}", f"/households/{odd['household']}/money"):
        answer = api.client.get(path)
        assert answer.status_code == 200, (path, answer.text)
    lag = api.client.get("/projections/lag")
    assert lag.status_code == 200, lag.text
    assert lag.json()["flags"]["failed"] >= 1
    assert {f["position"] for f in lag.json()["balances"]["failures"]} >= {
        odd["text"], odd["garbled"]}
    health = api.client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded" and health.json()["failed_events"] >= 4


def test_health_is_ok_without_failures(api: Any, world: World) -> None:
    a_funded_account(world, TOWNSHIP, 1_000)
    runner.catch_up(world.app)
    health = api.client.get("/health").json()
    assert health["status"] == "ok" and "failed_events" not in health, health
