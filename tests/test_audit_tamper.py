"""Full verification finds and locates every kind of change made to the store with raw SQL.

Each test: a store with signed checkpoints → someone edits the events table (and in the
last cases the tree tables too) behind the application's back → ``verify_log`` reports the
first position that differs and what kind of change it is.  Runs on SQLite and PostgreSQL
(``store`` fixture of conftest.py); pages of 8 leaves so that changes fall mid-log, across
page boundaries, in the slow path.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from audit import log, tree_store
from audit.store import AuditConfig, AuditStore
from audit.verify import verify_log
from domain.application import Zhuisu

PAGE = 8
CITIES = 24  # 1 province + 24 cities = 25 events, leaves 0..24 at notification ids 1..25


def regions(app: Zhuisu, first: int, count: int) -> None:
    """``count`` city regions (one event each) under province 52, in one transaction."""
    with app.batch():
        if first == 0:
            app.create_region("52", "贵州省", "province", None)
        for i in range(first, first + count):
            app.create_region(f"52{i:02d}", f"市{i}", "city", "52")


class RawEvents:
    """Edits of the events table the way someone with database access would make them."""

    def __init__(self, audit: AuditStore):
        self.audit = audit
        sqlite = audit.dialect == "sqlite"
        self.table = "stored_events" if sqlite else f'"{audit.schema}"."zhuisu_events"'
        self.pos = "rowid" if sqlite else "notification_id"
        self.sqlite = sqlite

    def run(self, sql: str, *params: object) -> list[tuple]:
        sql = sql.format(t=self.table, pos=self.pos)
        with self.audit.engine.begin() as conn:
            result = conn.exec_driver_sql(sql if self.sqlite else sql.replace("?", "%s"),
                                          params)
            return result.fetchall() if result.returns_rows else []

    def row(self, position: int) -> tuple:
        return self.run("SELECT originator_id, originator_version, topic, state FROM {t} "
                        "WHERE {pos} = ?", position)[0]

    def shift(self, from_position: int, by: int) -> None:
        """Renumber every row at or after ``from_position`` by ``by`` (±1), keeping order."""
        self.run("UPDATE {t} SET {pos} = -{pos} WHERE {pos} >= ?", from_position)
        self.run("UPDATE {t} SET {pos} = -{pos} + ? WHERE {pos} < 0", by)

    def insert_copy_at(self, position: int, of_position: int) -> None:
        """A forged event (another aggregate's record under a new id) at ``position``."""
        _, version, topic, state = self.row(of_position)
        oid = uuid.uuid4()
        self.run("INSERT INTO {t} (originator_id, originator_version, topic, state, {pos}) "
                 "VALUES (?, ?, ?, ?, ?)", oid.hex if self.sqlite else oid, version, topic,
                 state, position)


@pytest.fixture
def audit(app: Zhuisu, tmp_path: Path):
    """25 events, a checkpoint at 13 leaves and one at 25, on the app's database."""
    store = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", "zhuisu.test/log"))
    regions(app, 0, 12)
    log.make_checkpoint(store)
    regions(app, 12, CITIES - 12)
    log.make_checkpoint(store)
    yield store
    store.close()


@pytest.fixture
def raw(audit: AuditStore) -> RawEvents:
    return RawEvents(audit)


def verified(audit: AuditStore, **kw: object):
    result = verify_log(audit, page=PAGE, **kw)
    assert not result.ok, "the change was not detected"
    return result.first


def test_a_clean_store_verifies_ok(audit: AuditStore) -> None:
    result = verify_log(audit, page=PAGE)
    assert result.ok, result.message
    assert (result.tree_size, result.records, result.checkpoints) == (25, 25, 2)


def test_a_clean_store_verifies_ok_in_worker_processes(audit: AuditStore) -> None:
    result = verify_log(audit, page=PAGE, workers=2)
    assert result.ok, result.message


def test_changed_state_byte_is_located_and_named(audit: AuditStore, raw: RawEvents) -> None:
    state = bytearray(raw.row(9)[3])
    state[len(state) // 2] ^= 0x01
    raw.run("UPDATE {t} SET state = ? WHERE {pos} = ?", bytes(state), 9)
    found = verified(audit)
    assert (found.kind, found.position, found.leaf_index, found.fields) == (
        "changed", 9, 8, ("state",))


def test_changed_topic_is_located_and_named(audit: AuditStore, raw: RawEvents) -> None:
    raw.run("UPDATE {t} SET topic = ? WHERE {pos} = ?", "domain.region:Region.Renamed", 17)
    found = verified(audit)
    assert (found.kind, found.position, found.fields) == ("changed", 17, ("topic",))


def test_changed_originator_version_is_located_and_named(audit: AuditStore,
                                                         raw: RawEvents) -> None:
    raw.run("UPDATE {t} SET originator_version = originator_version + 1 WHERE {pos} = ?", 3)
    found = verified(audit)
    assert (found.kind, found.position, found.fields) == ("changed", 3, ("originator_version",))


def test_deleted_row_is_located(audit: AuditStore, raw: RawEvents) -> None:
    raw.run("DELETE FROM {t} WHERE {pos} = ?", 11)
    found = verified(audit)
    assert (found.kind, found.position, found.leaf_index) == ("deleted", 11, 10)


def test_deleted_row_with_later_rows_renumbered_is_located(audit: AuditStore,
                                                           raw: RawEvents) -> None:
    raw.run("DELETE FROM {t} WHERE {pos} = ?", 6)
    raw.shift(7, -1)
    found = verified(audit)
    assert (found.kind, found.position) == ("deleted", 6)


def test_inserted_row_with_later_rows_renumbered_is_located(audit: AuditStore,
                                                            raw: RawEvents) -> None:
    raw.shift(10, +1)
    raw.insert_copy_at(10, of_position=4)
    found = verified(audit)
    assert (found.kind, found.position, found.leaf_index) == ("inserted", 10, 9)


def test_inserted_row_in_a_gap_between_tree_positions_is_located(
        app: Zhuisu, tmp_path: Path, store) -> None:
    """Notification ids may have gaps (PostgreSQL: rolled-back inserts); SQLite reuses none."""
    if store.kind == "sqlite":
        pytest.skip("SQLite rowids have no gaps to insert into without renumbering")
    audit = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", "zhuisu.test/log"))
    raw = RawEvents(audit)
    regions(app, 0, 5)
    raw.run(f"SELECT nextval(pg_get_serial_sequence('{raw.table}', 'notification_id'))")
    regions(app, 5, 5)
    log.make_checkpoint(audit)
    assert verify_log(audit, page=PAGE).ok
    raw.insert_copy_at(7, of_position=3)
    found = verified(audit)
    assert (found.kind, found.position, found.leaf_index) == ("inserted", 7, 6)
    audit.close()


def test_two_swapped_rows_are_located(audit: AuditStore, raw: RawEvents) -> None:
    raw.run("UPDATE {t} SET {pos} = -1 WHERE {pos} = ?", 5)
    raw.run("UPDATE {t} SET {pos} = 5 WHERE {pos} = ?", 19)
    raw.run("UPDATE {t} SET {pos} = 19 WHERE {pos} = -1")
    found = verified(audit)
    assert (found.kind, found.position, found.other_position) == ("swapped", 5, 19)


def test_truncated_tail_is_located(audit: AuditStore, raw: RawEvents) -> None:
    raw.run("DELETE FROM {t} WHERE {pos} > ?", 21)
    found = verified(audit)
    assert (found.kind, found.position, found.leaf_index) == ("truncated", 22, 21)


def rewrite_tail(raw: RawEvents, audit: AuditStore, from_position: int) -> None:
    """Change every record from ``from_position`` and recompute the stored tree to match."""
    for position, state in raw.run("SELECT {pos}, state FROM {t} WHERE {pos} >= ?",
                                   from_position):
        raw.run("UPDATE {t} SET state = ? WHERE {pos} = ?", bytes(state) + b" ", position)
    tree_store.rebuild(audit)


def test_rewritten_tail_with_recomputed_tree_is_caught_by_the_earlier_checkpoint(
        audit: AuditStore, raw: RawEvents) -> None:
    rewrite_tail(raw, audit, 16)
    found = verified(audit)
    assert (found.kind, found.position, found.leaf_index, found.checkpoint_id) == (
        "rewritten", 16, 15, 2)


def test_rewritten_tail_without_the_sealed_leaves_is_located_between_checkpoints(
        audit: AuditStore, raw: RawEvents) -> None:
    rewrite_tail(raw, audit, 16)
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {audit.table_sql('log_checkpoint_leaves')}")
    found = verified(audit)
    assert found.kind == "rewritten"
    assert found.leaf_index == 13, "the first leaf after the last checkpoint that still holds"
    assert "leaves 13..24" in found.message


def test_truncated_events_and_tree_are_caught_by_the_checkpoint(audit: AuditStore,
                                                                raw: RawEvents) -> None:
    raw.run("DELETE FROM {t} WHERE {pos} > ?", 20)
    tree_store.rebuild(audit)
    found = verified(audit)
    assert (found.kind, found.leaf_index) == ("truncated", 20)


def test_edited_tree_node_is_located(audit: AuditStore) -> None:
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {audit.table_sql('merkle_nodes')} SET hash = "
                             f"{'?' if audit.dialect == 'sqlite' else '%s'} "
                             f"WHERE level = 2 AND idx = 3", (bytes(32),))
    found = verified(audit)
    assert (found.kind, found.leaf_index) == ("tree", 12)


def test_edited_checkpoint_row_is_reported(audit: AuditStore) -> None:
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {audit.table_sql('log_checkpoints')} "
                             f"SET tree_size = 99 WHERE id = 1")
    found = verified(audit)
    assert (found.kind, found.checkpoint_id) == ("checkpoint", 1)


def test_forged_checkpoint_signature_is_reported(audit: AuditStore) -> None:
    note = log.get_checkpoint(audit, 2).note
    at = note.rindex(" ") + 9  # a base64 character of the signature, past the key ID
    forged = note[:at] + ("A" if note[at] != "A" else "B") + note[at + 1:]
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE {audit.table_sql('log_checkpoints')} SET note = "
            f"{'?' if audit.dialect == 'sqlite' else '%s'} WHERE id = 2", (forged,))
    found = verified(audit)
    assert (found.kind, found.checkpoint_id) == ("checkpoint", 2)
    assert "does not verify" in found.message
