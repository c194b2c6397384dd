"""Reads stay right during a rebuild: a projection whose layout changed is built beside its
live tables and switched in one transaction once caught up (``projections.bluegreen``).

The new version here names accounts differently, so every read tells the old tables from
the new ones: read between the build's batches, the live tables are always the complete
old answer, and after the switch the complete new one (equal to the new version built
from zero elsewhere).  A build stopped after a few batches leaves the old tables serving,
its progress visible in ``runner.lag``, and the next catch-up resumes it where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from factories import TOWNSHIP, a_funded_account, a_registered_household, household_payment, run
from domain.fund_account import FundAccount
from projections import bluegreen, runner
from projections import balances as bal
from projections.balances import Balances
from projections.projection import handles
from projections.tracking import dump, ensure_schema, positions
from store.engines import dispose, engine_for

pytestmark = pytest.mark.usefixtures("close_read_models")

T = str(FundAccount.create_id(TOWNSHIP, "central"))
BATCH = 4


class BalancesRenamed(Balances):
    """A new layout whose rows differ from the old ones (an account's name)."""

    version = Balances.version + 1

    @handles("FundAccount.Opened")
    def opened(self, e, rows):
        super().opened(e, rows)
        row = rows.get(bal.accounts, e.originator_id)
        row["name"] = f"v{self.version} {row['name']}"


def some_business(world, households, start=0):
    if start == 0:
        a_funded_account(world, TOWNSHIP, 10_000_000)
    for i in range(start, start + households):
        hid = a_registered_household(world, f"H{i}")
        run(world, "FundAccount.Disbursed", T, household_payment(hid, 10_000 + i))


def step(source, engine, projection):
    """One batch of the build (or the switch), as the worker does between live batches."""
    return bluegreen.step(source, engine, projection, BATCH,
                          process_batch=runner.process_batch)


def read(url):
    """What a reader gets: the balances read model, every row."""
    with engine_for(url).connect() as conn:
        return dump(conn, Balances.tables)


def built_elsewhere(store, app, projection):
    url = store.new_database_url()
    runner.catch_up(app, projections=[projection], engine=engine_for(url))
    return read(url)


def location_exists(engine, location):
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"),
                                {"s": location}).first() is not None
    return Path(location).exists()


def test_reads_are_the_old_answer_until_the_switch_then_the_new(store, app, world):
    some_business(world, 3)
    runner.catch_up(app)
    old = read(app.database_url)
    assert any(r[1] == "5226 central" or "central" in r[1] for r in old["balance_accounts"])

    new = BalancesRenamed()
    engine = engine_for(app.database_url)
    source = runner.source_for(app)
    ensure_schema(engine, [new])
    assert bluegreen.split(engine, [new]) == ((), (new,))
    steps, seen = [], []
    while (state := step(source, engine, new)) == "built":
        steps.append(state)
        assert read(app.database_url) == old  # the complete old answer, every time
        lag = runner.lag(app)["balances"]
        seen.append(lag["rebuild"]["position"])
        assert lag["rebuild"]["version"] == new.version
        assert lag["rebuild"]["behind"] == lag["head"] - lag["rebuild"]["position"]
        assert lag["rebuild"]["started_at"]
        assert runner.rebuilds(app)["balances"]["position"] == lag["rebuild"]["position"]
        assert "location" not in runner.rebuilds(app)["balances"]  # /health: no paths
        if len(steps) == 2:  # the log grows during the build: the old tables wait, lag shows
            some_business(world, 2, start=3)
            assert runner.lag(app)["balances"]["lag"] > 0
    assert state == "switched" and len(steps) > 3
    assert seen == sorted(seen)  # the build's position only moves forward
    assert "rebuild" not in runner.lag(app)["balances"]
    location = bluegreen.build_location(engine, new)
    assert not location_exists(engine, location)

    switched = read(app.database_url)
    assert switched != old
    assert all(r[1].startswith(f"v{new.version} ") for r in switched["balance_accounts"])
    runner.catch_up(app, projections=[new])  # whatever came after the build's last batch
    assert read(app.database_url) == built_elsewhere(store, app, new)
    with engine.connect() as conn:
        assert positions(conn)["balances"] == app.recorder.max_notification_id()
        assert conn.execute(text("SELECT version FROM projection_tracking "
                                 "WHERE name = 'balances'")).scalar() == new.version


def test_a_build_stopped_midway_leaves_the_old_tables_serving_and_resumes(store, app, world):
    some_business(world, 4)
    runner.catch_up(app)
    old = read(app.database_url)
    new = BalancesRenamed()
    engine = engine_for(app.database_url)
    source = runner.source_for(app)
    ensure_schema(engine, [new])
    for _ in range(3):
        assert step(source, engine, new) == "built"
    stopped_at = runner.lag(app)["balances"]["rebuild"]["position"]
    assert stopped_at > 0

    dispose()  # the worker is gone: its connections closed, nothing switched
    runner.close_sources()
    assert read(app.database_url) == old
    assert runner.lag(app)["balances"]["rebuild"]["position"] == stopped_at

    resumed = []
    original = runner.process_batch

    def watching(source, engine, projections, limit, until=None, **kw):
        with engine.connect() as conn:
            resumed.append(positions(conn).get(new.name))
        return original(source, engine, projections, limit, until, **kw)

    runner.process_batch = watching
    try:
        runner.catch_up(app, projections=[new], batch=BATCH)
    finally:
        runner.process_batch = original
    assert resumed[0] == stopped_at  # resumed where it stopped, not from 0
    assert read(app.database_url) == built_elsewhere(store, app, new)
    assert "rebuild" not in runner.lag(app)["balances"]


def test_a_rebuild_in_place_drops_a_build_under_way(store, app, world):
    """``zhuisu project rebuild`` stays a rebuild from zero in place; a build beside of the
    same projection is dropped with it."""
    some_business(world, 2)
    runner.catch_up(app)
    new = BalancesRenamed()
    engine = engine_for(app.database_url)
    source = runner.source_for(app)
    ensure_schema(engine, [new])
    assert step(source, engine, new) == "built"
    location = bluegreen.build_location(engine, new)
    assert location_exists(engine, location)
    bluegreen.discard(engine, [new])
    assert not location_exists(engine, location)
    assert bluegreen.split(engine, [new]) == ((new,), ())
    runner.catch_up(app, projections=[new])
    assert read(app.database_url) == built_elsewhere(store, app, new)


def test_a_worker_builds_beside_between_its_live_batches_and_switches(store, app, world,
                                                                        monkeypatch):
    """``zhuisu project run``: the build goes one batch at a time between live batches;
    the worker switches it when caught up and then follows the log with the new layout."""
    import threading
    import time

    some_business(world, 3)
    runner.catch_up(app)
    old = read(app.database_url)
    new = BalancesRenamed()
    monkeypatch.setattr(runner, "PROJECTIONS", tuple(
        new if p.name == new.name else p for p in runner.PROJECTIONS))
    stop = threading.Event()
    url = runner.source_for(app).url
    worker = threading.Thread(target=runner.run_worker, args=(url, stop),
                              kwargs={"poll_seconds": 0.05, "batch": BATCH})
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lag = runner.lag(app)
            if "rebuild" not in lag["balances"] and all(v["lag"] == 0 for v in lag.values()) \
                    and read(app.database_url) != old:
                break
            time.sleep(0.1)
        some_business(world, 1, start=3)  # followed with the new layout
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(v["lag"] for v in runner.lag(app).values()):
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(30)
    assert read(app.database_url) == built_elsewhere(store, app, new)
