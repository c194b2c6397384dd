"""Exactly once: a worker killed mid-batch loses and duplicates nothing, several workers at
once never process the same events twice, and lag says how far behind each projection is.

"Replay elsewhere" builds the read models from the same log into another database (a
second SQLite file, another PostgreSQL schema) with ``catch_up(app, engine=…, until=…)``;
equal table dumps mean equal read models.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

from domain.fund_account import FundAccount
from factories import TOWNSHIP, a_funded_account, a_registered_household, household_payment, run
from projections import runner
from projections.balances import Balances
from projections.tracking import dump, positions
from store.engines import engine_for

TABLES = [t for p in runner.PROJECTIONS for t in p.tables]
T = str(FundAccount.create_id(TOWNSHIP, "central"))
BATCH = 20
SPAWN = multiprocessing.get_context("spawn")


pytestmark = pytest.mark.usefixtures("close_read_models")


def some_business(world, households=3, start=0):
    if start == 0:
        a_funded_account(world, TOWNSHIP, 10_000_000)
    for i in range(start, start + households):
        hid = a_registered_household(world, f"H{i}")
        run(world, "FundAccount.Disbursed", T, household_payment(hid, 10_000 + i))


def tables_of(url):
    with engine_for(url).connect() as conn:
        return dump(conn, TABLES)


def replayed_elsewhere(store, app, until=None):
    """The read models built from ``app``'s log into a fresh database, up to ``until``."""
    url = store.new_database_url()
    runner.catch_up(app, engine=engine_for(url), until=until)
    return tables_of(url)


# a worker killed in the middle of a batch --------------------------------------------------
def _crash_in_second_batch(url, flushed):
    """Catch up, and hang in the second batch after its rows are written, before commit."""
    from projections import projection

    original = projection.Rows.flush
    calls = []

    def flush(self):
        original(self)
        calls.append(1)
        if len(calls) == 2:
            flushed.set()
            time.sleep(120)

    projection.Rows.flush = flush
    runner.catch_up(url, batch=BATCH)


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(store, app, world):
    some_business(world)
    first_batch_end = app.recorder.select_notifications(1, BATCH)[-1].id
    flushed = SPAWN.Event()
    worker = SPAWN.Process(target=_crash_in_second_batch, args=(app.database_url, flushed))
    worker.start()
    try:
        assert flushed.wait(60), "the worker never reached its second batch"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
    assert worker.exitcode == -signal.SIGKILL

    with engine_for(app.database_url).connect() as conn:
        assert set(positions(conn).values()) == {first_batch_end}
    assert tables_of(app.database_url) == replayed_elsewhere(store, app, until=first_batch_end)

    runner.catch_up(app, batch=BATCH)
    assert tables_of(app.database_url) == replayed_elsewhere(store, app)


# several workers at once ---------------------------------------------------------------------
def _work(url, stop):
    # polling only every 30 s: catching up sooner means the store's NOTIFY woke the worker
    runner.run_worker(url, stop, poll_seconds=30, batch=7)


def wait_for_no_lag(app, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(v["lag"] == 0 for v in runner.lag(app).values()):
            return
        time.sleep(0.05)
    raise AssertionError(f"projections still behind: {runner.lag(app)}")


def test_several_postgres_workers_never_process_an_event_twice(store, app, world):
    if store.kind != "postgres":
        pytest.skip("separate worker processes follow a PostgreSQL log (LISTEN/NOTIFY)")
    some_business(world, 2)
    stop = SPAWN.Event()
    workers = [SPAWN.Process(target=_work, args=(app.database_url, stop)) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        wait_for_no_lag(app)
        some_business(world, 4, start=2)  # written while the workers follow the log
        wait_for_no_lag(app)
    finally:
        stop.set()
        for w in workers:
            w.join(40)
    assert [w.exitcode for w in workers] == [0, 0, 0]  # a double insert would have failed one
    assert tables_of(app.database_url) == replayed_elsewhere(store, app)


def test_worker_threads_take_turns_and_catch_up(store, app, world):
    stop = threading.Event()
    url = runner.source_for(app).url
    threads = [threading.Thread(target=runner.run_worker, args=(url, stop),
                                kwargs={"poll_seconds": 0.02, "batch": 5}) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        some_business(world, 2)
        wait_for_no_lag(app)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert tables_of(app.database_url) == replayed_elsewhere(store, app)


# lag, and rebuild when a projection's layout changes --------------------------------------------
def test_lag_is_the_distance_from_the_head_of_the_log(app, world):
    some_business(world, 1)
    head = app.recorder.max_notification_id()
    runner.catch_up(app, until=head - 5)
    assert runner.lag(app)["balances"] == {"position": head - 5, "head": head, "lag": 5}
    runner.catch_up(app)
    assert {v["lag"] for v in runner.lag(app).values()} == {0}


class BalancesV2(Balances):
    version = Balances.version + 1  # a new layout, whatever the current one is


def test_projection_whose_layout_changed_is_rebuilt_from_zero(app, world):
    """Built from zero beside the live tables and switched (projections.bluegreen): the
    switched tables are the read model from zero, whatever the old ones held."""
    some_business(world, 1)
    runner.catch_up(app)
    before = tables_of(app.database_url)
    with engine_for(app.database_url).begin() as conn:
        conn.execute(Balances.tables[0].delete())  # damage it: the rebuild must not care
    assert runner.catch_up(app, projections=[BalancesV2()]) == {
        "balances": app.recorder.max_notification_id()}
    assert tables_of(app.database_url) == before


def test_a_process_that_meets_many_stores_keeps_few_engines(tmp_path):
    """Servers under test open a store per test: pooled connections must not pile up."""
    from store import engines as store

    urls = [f"sqlite:///{tmp_path}/s{i}.db" for i in range(store.ENGINES_KEPT + 3)]
    engines = [engine_for(url) for url in urls]
    assert engine_for(urls[-1]) is engines[-1]
    assert [url for url, _ in store._engines] == urls[-store.ENGINES_KEPT:]
