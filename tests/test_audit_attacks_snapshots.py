"""Issue 12, item 1: a snapshot edited with raw SQL is never served, and ``verify`` names it.

Snapshots live outside the log.  Each test takes a snapshot of a county account every
4 events (the application's interval is 200; set on the instance to keep the tests
fast), edits the stored snapshot behind the application's back, then opens a fresh
application (an empty aggregate cache) on the same store: the balance it shows and
writes with is the log's, and full verification names the snapshot by aggregate id and
version.  Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from factories import (
    COUNTY,
    TOWNSHIP,
    World,
    a_county_world,
    a_funded_account,
    allocation,
    receipt,
    run,
)

from audit.store import AuditConfig, AuditStore
from audit.verify import verify_log
from domain.application import SNAPSHOT_SEAL, snapshot_mac, snapshot_seal_key, unseal
from domain.errors import InsufficientFunds
from domain.fund_account import FundAccount

EVERY = 4


@pytest.fixture
def snapshotted(store: Any, tmp_path: Path) -> Any:
    """A funded county account with snapshots at versions 4 and 8 and two events after:
    (store, app, account id, audit store)."""
    app = store.new_app()
    app.snapshotting_intervals = {FundAccount: EVERY}
    world = a_county_world(app)
    account = a_funded_account(world, COUNTY, amount_fen=1_000_000)  # versions 1, 2
    for _ in range(8):  # versions 3 .. 10
        run(world, "FundAccount.Received", account, receipt(1_000))
    audit = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", "zhuisu.test/log"))
    yield store, app, account, audit
    audit.close()


def snapshot_rows(audit: AuditStore) -> list[tuple]:
    with audit.engine.connect() as conn:
        return [(str(o), v, t, bytes(s)) for o, v, t, s in audit.raw(
            conn, f"SELECT originator_id, originator_version, topic, state FROM "
                  f"{audit.snapshots_table} ORDER BY originator_version")]


def write_snapshot_state(audit: AuditStore, version: int, state: bytes) -> None:
    mark = "?" if audit.dialect == "sqlite" else "%s"
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {audit.snapshots_table} SET state = {mark} "
                             f"WHERE originator_version = {mark}", (state, version))


def test_snapshots_are_taken_sealed_and_a_clean_store_verifies(snapshotted: Any) -> None:
    _, _, account, audit = snapshotted
    rows = snapshot_rows(audit)
    assert [v for _, v, _, _ in rows] == [4, 8]
    assert all(state.startswith(SNAPSHOT_SEAL) for *_, state in rows)
    result = verify_log(audit)
    assert result.ok, result.message
    assert result.snapshots == 2


def test_an_edited_balance_in_a_snapshot_is_not_served_and_verify_names_it(
        snapshotted: Any, caplog: pytest.LogCaptureFixture) -> None:
    store, app, account, audit = snapshotted
    true_balance = app.load(FundAccount, account).balance
    assert true_balance == 1_008_000
    (_, version, _, state) = snapshot_rows(audit)[1]  # version 8: balance 1_006_000
    assert b'"balance":1006000' in state
    write_snapshot_state(audit, version, state.replace(b'"balance":1006000',
                                                       b'"balance":9006000'))

    # the write path (a fresh application, nothing cached) uses the log's balance: an
    # allocation above the true balance but below the edited one is refused
    writer = store.app_on(app.database_url)
    with pytest.raises(InsufficientFunds) as refused:
        run(World(writer), "FundAccount.Allocated", account,
            allocation(FundAccount.create_id(TOWNSHIP, "central"), 2_000_000))
    assert refused.value.details["balance_fen"] == true_balance

    reader = store.app_on(app.database_url)  # the reads (show-account, the API) likewise
    with caplog.at_level(logging.ERROR, logger="zhuisu.snapshots"):
        assert reader.load(FundAccount, account).balance == true_balance
    assert any(f"{account}" in r.getMessage() and "version 8 refused" in r.getMessage()
               for r in caplog.records), caplog.text

    result = verify_log(audit)
    assert not result.ok
    snapshot = next(f for f in result.findings if f.kind == "snapshot")
    assert f"aggregate {account} at version 8" in snapshot.message
    assert snapshot.fields == ("balance",)


def test_a_snapshot_resealed_by_someone_with_the_key_is_still_named_by_verify(
        snapshotted: Any) -> None:
    """The seal only keeps a snapshot from being served unchecked; verify needs no key."""
    store, app, account, audit = snapshotted
    oid, version, topic, state = snapshot_rows(audit)[0]  # version 4: balance 1_002_000
    _, inner = unseal(state)
    forged = inner.replace(b'"balance":1002000', b'"balance":7002000')
    assert forged != inner
    key = snapshot_seal_key(app.id_pepper)
    mac = snapshot_mac(key, StoredEvent(oid, version, topic, forged))
    write_snapshot_state(audit, version, SNAPSHOT_SEAL + mac + forged)

    result = verify_log(audit)
    assert [(f.kind, f"aggregate {account} at version 4" in f.message)
            for f in result.findings] == [("snapshot", True)]


def test_a_snapshot_moved_to_another_version_is_refused_on_load(snapshotted: Any) -> None:
    """The seal covers the aggregate id and version: the version 4 snapshot (a smaller
    balance) copied over the version 8 one is not served."""
    store, app, account, audit = snapshotted
    rows = snapshot_rows(audit)
    write_snapshot_state(audit, 8, rows[0][3])
    fresh = store.app_on(app.database_url)
    assert fresh.load(FundAccount, account).balance == 1_008_000
    assert not verify_log(audit).ok
