"""The server notices tampering by itself: the sweep re-verifies the log a few pages per
tick, proofs are held against their leaves, and a finding raises the integrity alarm —
kept in the store — which turns /health red, stops checkpoints and proofs and refuses
writes until an operator clears it (and the clearing is recorded)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from api_support import api_on, refused
from typer.testing import CliRunner

from audit import log, tree_store
from audit.alarm import (
    IntegrityAlarm,
    alarm_history,
    clear_alarm,
    current_alarm,
    raise_alarm,
)
from audit.store import AuditConfig, AuditStore
from audit.sweep import SweepState, sweep_pass, sweep_tick
from cli import app as cli
from domain.application import Zhuisu
from domain.errors import InvalidInput

pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures logging


@pytest.fixture(autouse=True)
def _log_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_LOG_KEY_FILE", str(tmp_path / "log-key"))


@pytest.fixture
def audit(app: Zhuisu, tmp_path: Path):
    store = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key"))
    yield store
    store.close()


def regions(app: Zhuisu, count: int, first: int = 0) -> None:
    with app.batch():
        if first == 0:
            app.create_region("52", "贵州省", "province", None)
        for i in range(first, first + count):
            app.create_region(f"52{i:02d}", f"市{i}", "city", "52")


def flip_a_byte(audit: AuditStore, position: int) -> bytes:
    """Change one byte of the stored state of the event at ``position``; the old state."""
    sqlite = audit.dialect == "sqlite"
    table = "stored_events" if sqlite else f'"{audit.schema}"."zhuisu_events"'
    pos, mark = ("rowid", "?") if sqlite else ("notification_id", "%s")
    with audit.engine.begin() as conn:
        state = bytes(conn.exec_driver_sql(f"SELECT state FROM {table} WHERE {pos} = {mark}",
                                           (position,)).scalar_one())
        at = state.index(b"\xe5")  # inside a Chinese name: still valid JSON bytes
        changed = state[:at] + bytes([state[at] ^ 0x01]) + state[at + 1:]
        conn.exec_driver_sql(f"UPDATE {table} SET state = {mark} WHERE {pos} = {mark}",
                             (changed, position))
    return state


def put_back(audit: AuditStore, position: int, state: bytes) -> None:
    sqlite = audit.dialect == "sqlite"
    table = "stored_events" if sqlite else f'"{audit.schema}"."zhuisu_events"'
    pos, mark = ("rowid", "?") if sqlite else ("notification_id", "%s")
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {table} SET state = {mark} WHERE {pos} = {mark}",
                             (state, position))


# the alarm itself --------------------------------------------------------------------
def test_the_alarm_is_kept_in_the_store_until_an_operator_clears_it(app: Zhuisu,
                                                                    audit: AuditStore) -> None:
    assert current_alarm(audit) is None
    first = raise_alarm(audit, "changed at leaf 3", 4)
    assert raise_alarm(audit, "changed at leaf 3", 4) == first  # the same finding: one row
    raise_alarm(audit, "tree at leaf 9")
    again = AuditStore(AuditConfig(app.database_url))  # another process, or a restart
    try:
        assert current_alarm(again) == first
        assert first.raised_at.tzinfo is not None and first.position == 4
    finally:
        again.close()

    with pytest.raises(InvalidInput, match="reason"):
        clear_alarm(audit, reason=" ", by="ops")
    cleared = clear_alarm(audit, reason="restored from backup; verify OK", by="cli:ops")
    assert [a.id for a in cleared] == [first.id, first.id + 1]
    assert current_alarm(audit) is None
    kept = alarm_history(audit)[-1]
    assert (kept.cleared_by, kept.clear_reason) == ("cli:ops", "restored from backup; verify OK")
    with pytest.raises(InvalidInput, match="no integrity alarm"):
        clear_alarm(audit, reason="again", by="ops")


def test_no_checkpoint_and_no_proof_while_the_alarm_stands(app: Zhuisu,
                                                           audit: AuditStore) -> None:
    regions(app, 3)
    log.make_checkpoint(audit)
    raise_alarm(audit, "changed at leaf 1", 2)
    with pytest.raises(IntegrityAlarm, match="changed at leaf 1"):
        log.make_checkpoint(audit)
    with pytest.raises(IntegrityAlarm):
        log.prove_inclusion(audit, position=2)
    with pytest.raises(IntegrityAlarm):
        log.rotate_log_key(audit)
    assert len(log.list_checkpoints(audit)) == 1


def test_a_proof_of_a_changed_event_raises_the_alarm(app: Zhuisu, audit: AuditStore) -> None:
    regions(app, 5)
    log.make_checkpoint(audit)
    log.prove_inclusion(audit, position=3)
    flip_a_byte(audit, 3)
    with pytest.raises(IntegrityAlarm, match="notification id 3"):
        log.prove_inclusion(audit, position=3)
    alarm = current_alarm(audit)
    assert alarm is not None and alarm.position == 3


def test_an_answer_built_on_a_changed_event_is_refused(store: Any, app: Zhuisu,
                                                        audit: AuditStore) -> None:
    """The server holds every event it reads from the store against its leaf."""
    regions(app, 3)  # 52 at notification id 1, then 5200, 5201, 5202
    tree_store.catch_up(audit)
    fresh = store.app_on(app.database_url)  # a cache of its own: it reads from the store
    with api_on(fresh) as api:
        assert api.client.get("/regions/5201").status_code == 200
        flip_a_byte(audit, 2)  # 5200's creation, not yet read by this server
        answer = refused(api.client.get("/regions/5200"), 503, "IntegrityAlarm", "alarm")
        assert "notification id 2" in answer["detail"]
        assert current_alarm(audit).position == 2


# the sweep ---------------------------------------------------------------------------
def test_the_sweep_finds_a_changed_byte_within_one_pass(app: Zhuisu, audit: AuditStore) -> None:
    """Pages of 8 leaves, 2 pages a tick: 41 leaves are a pass of 3 ticks; a change is
    found within a pass and a tick whichever leaf it hits, wherever the sweep stands."""
    regions(app, 40)
    tree_store.catch_up(audit)
    log.make_checkpoint(audit)
    state = SweepState(page=8)
    assert sweep_tick(audit, state, pages=2) == []  # leaves 0..15 checked
    assert sweep_pass(audit, pages=2, page=8) == []

    flip_a_byte(audit, 5)  # behind the sweep: found on the next pass
    ticks, found = 0, []
    while not found:
        found = sweep_tick(audit, state, pages=2)
        ticks += 1
        assert ticks <= -(-41 // 16) + 1, "not found within the documented bound"
    assert (found[0].kind, found[0].position, found[0].leaf_index) == ("changed", 5, 4)
    assert "state" in found[0].fields


def test_the_sweep_finds_a_rewritten_tree_through_the_signed_roots(
        app: Zhuisu, audit: AuditStore) -> None:
    """Someone changes an event and rebuilds the tree from it: records and tree agree,
    but not with the root a checkpoint signed."""
    regions(app, 20)
    log.make_checkpoint(audit)
    flip_a_byte(audit, 7)
    tree_store.rebuild(audit)
    found = sweep_pass(audit, pages=1, page=8)
    assert [f.kind for f in found] == ["rewritten"]


def test_a_deleted_checkpoint_is_found(app: Zhuisu, audit: AuditStore) -> None:
    regions(app, 10)
    for _ in range(3):
        log.make_checkpoint(audit)
    state = SweepState(page=8)
    while sweep_tick(audit, state, pages=4) == [] and state.passes < 1:
        pass
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {audit.table_sql('log_checkpoints')} WHERE id = 2")
    found = sweep_tick(audit, state, pages=4)
    assert found and found[0].kind == "checkpoint" and "expected the 3" in found[0].message


def test_a_deleted_event_is_found(app: Zhuisu, audit: AuditStore) -> None:
    regions(app, 20)
    tree_store.catch_up(audit)
    sqlite = audit.dialect == "sqlite"
    table = "stored_events" if sqlite else f'"{audit.schema}"."zhuisu_events"'
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE "
                             f"{'rowid' if sqlite else 'notification_id'} = 9")
    found = sweep_pass(audit, pages=1, page=8)
    assert (found[0].kind, found[0].position) == ("deleted", 9)


# the running server -------------------------------------------------------------------
def test_the_server_notices_a_changed_byte_by_itself_and_stops_until_cleared(
        app: Zhuisu, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZHUISU_SWEEP_EVERY", "0.05")
    monkeypatch.setenv("ZHUISU_DATABASE_URL", app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(app.pepper_file))
    regions(app, 10)
    province = {"code": "53", "name": "云南省", "level": "province", "parent_code": None}
    with api_on(app) as api:
        audit = api.client.app.state.audit
        assert api.client.get("/health").status_code == 200
        old = flip_a_byte(audit, 4)  # an old event, while the server runs

        # The sweep runs every 0.05 s; the deadline only guards a loaded machine's delays.
        deadline = time.monotonic() + 30
        while (health := api.client.get("/health")).status_code == 200:
            assert time.monotonic() < deadline, "the server did not notice within 30 s"
            time.sleep(0.02)
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "alarm" and body["alarm"]["position"] == 4
        assert "changed" in body["reason"] and "notification id 4" in body["reason"]

        events = app.recorder.max_notification_id()
        write = refused(api.client.post("/regions", json=province), 503, "IntegrityAlarm",
                        "alarm")
        assert "changed" in write["detail"]
        assert app.recorder.max_notification_id() == events  # nothing stored
        refused(api.client.post("/log/checkpoints"), 503, "IntegrityAlarm")
        refused(api.client.get("/log/proofs/inclusion", params={"position": 2}), 503,
                "IntegrityAlarm")

    with api_on(app) as api:  # a restart does not forget it
        assert api.client.get("/health").status_code == 503
        put_back(AuditStore(AuditConfig(app.database_url)), 4, old)  # the operator restores

    cleared = CliRunner().invoke(cli, ["alarm", "clear", "--reason",
                                       "byte restored from backup; zhuisu verify OK"])
    assert cleared.exit_code == 0, cleared.stderr
    assert "cleared integrity alarm" in cleared.stdout
    shown = CliRunner().invoke(cli, ["alarm", "show", "--history"])
    assert "byte restored from backup" in shown.stdout and shown.exit_code == 0
    with api_on(app) as api:
        assert api.client.get("/health").status_code == 200
        answer = api.client.post("/regions", json=province)
        assert answer.status_code == 201 and answer.json()["receipt"]["checkpoint"]


def test_alarm_show_exits_3_while_raised(app: Zhuisu, audit: AuditStore,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_DATABASE_URL", app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(app.pepper_file))
    assert CliRunner().invoke(cli, ["alarm", "show"]).exit_code == 0
    raise_alarm(audit, "tree at leaf 2", now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    shown = CliRunner().invoke(cli, ["alarm", "show"])
    assert shown.exit_code == 3 and "tree at leaf 2" in shown.stdout
    no_reason = CliRunner().invoke(cli, ["alarm", "clear", "--reason", ""])
    assert no_reason.exit_code != 0 and "reason" in no_reason.stderr
    assert "Traceback" not in no_reason.stderr
    assert current_alarm(audit) is not None
