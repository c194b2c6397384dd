"""The log's leaves and its incremental tree in the store.

Leaves are the canonical encodings of the stored records in notification order; the tree
kept in the store is appended to as events arrive and is always the RFC 6962 tree of
those leaves — rebuilt from zero or caught up in steps, the tables are identical.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit import log, tree_store
from audit.errors import NotInLog, RecordFormatError
from audit.merkle import root_from_leaf_hashes
from audit.records import (
    Record,
    decode_record,
    differing_fields,
    encode_record,
    field_digests,
    leaf_hashes,
    record_leaf_hash,
)
from audit.store import AuditConfig, AuditStore, merkle_leaves, merkle_nodes, merkle_state
from audit.verify import verify_log
from domain.application import Zhuisu
from factories import a_county_world

WORKED_EXAMPLE = Record(7, uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8").hex.encode(), 1,
                        b"domain.region:Region.Created", b'{"code":"52"}')


def test_record_encoding_is_the_documented_worked_example() -> None:
    assert encode_record(WORKED_EXAMPLE).hex() == (
        "01" "0000000000000007" "0000000000000001" "00000020" "0000001c" "0000000d"
        + b"6ba7b8119dad11d180b400c04fd430c8".hex() + b"domain.region:Region.Created".hex()
        + b'{"code":"52"}'.hex())
    assert record_leaf_hash(WORKED_EXAMPLE).hex() == (
        "1eb525b2e7eccf61e0340ac9e06205d66da3527d0fed1a62db42c9bab5726041")


records = st.builds(Record, st.integers(0, 2**63 - 1), st.binary(max_size=40),
                    st.integers(-(2**63), 2**63 - 1), st.binary(max_size=40),
                    st.binary(max_size=200))


@given(records)
def test_record_encoding_round_trips_and_the_fast_path_hashes_the_same(record: Record) -> None:
    assert decode_record(encode_record(record)) == record
    assert leaf_hashes([record]) == [record_leaf_hash(record)]


@given(records, records)
def test_field_digests_name_exactly_the_fields_that_differ(a: Record, b: Record) -> None:
    expected = tuple(f for f in ("originator_id", "originator_version", "topic", "state")
                     if getattr(a, f) != getattr(b, f))
    assert differing_fields(field_digests(a), field_digests(b)) == expected


@pytest.mark.parametrize("data, error", [
    (b"", "header: expected 29 bytes, got 0"),
    (b"\x02" + encode_record(WORKED_EXAMPLE)[1:], "format: expected 1, got 2"),
    (encode_record(WORKED_EXAMPLE) + b"!", "length: expected 102 bytes, got 103"),
    (encode_record(WORKED_EXAMPLE)[:-1], "length: expected 102 bytes, got 101"),
])
def test_malformed_record_bytes_are_refused(data: bytes, error: str) -> None:
    with pytest.raises(RecordFormatError, match=error):
        decode_record(data)


# the tree in the store ------------------------------------------------------------------
@pytest.fixture
def audit(app: Zhuisu, tmp_path: Path):
    store = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", "zhuisu.test/log"))
    yield store
    store.close()


def cities(app: Zhuisu, first: int, count: int) -> None:
    with app.batch():
        if first == 0:
            app.create_region("52", "贵州省", "province", None)
        for i in range(first, first + count):
            app.create_region(f"52{i:02d}", f"市{i}", "city", "52")


def tables(audit: AuditStore) -> tuple[list, list, list]:
    with audit.engine.connect() as conn:
        return tuple(conn.execute(t.select().order_by(*t.primary_key.columns)).all()
                     for t in (merkle_leaves, merkle_nodes, merkle_state))


def test_tree_is_the_rfc6962_tree_of_the_records_in_notification_order(
        app: Zhuisu, audit: AuditStore) -> None:
    a_county_world(app)
    state = tree_store.catch_up(audit)
    with audit.engine.connect() as conn:
        rows = audit.events.between(conn, 0)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows) and len(rows) == state.size
    assert any(r[2] > 1 for r in rows), "officials have events of several versions"
    assert state.root == root_from_leaf_hashes([record_leaf_hash(r) for r in rows])
    assert state.last_position == rows[-1][0]
    assert verify_log(audit).ok


def test_catch_up_in_steps_equals_rebuild_from_zero(app: Zhuisu, audit: AuditStore) -> None:
    cities(app, 0, 4)
    tree_store.catch_up(audit)
    for first in (4, 5, 12):
        cities(app, first, first - 3)
        tree_store.catch_up(audit, batch=3)
    incremental = tables(audit)
    tree_store.rebuild(audit)
    assert tables(audit) == incremental


def test_catch_up_stores_each_completed_subtree_once(app: Zhuisu, audit: AuditStore) -> None:
    cities(app, 0, 20)
    size = tree_store.catch_up(audit).size
    leaves, nodes, _ = tables(audit)
    assert [leaf.position for leaf in leaves] == list(range(1, 22)) and size == 21
    assert len(nodes) == size - size.bit_count(), "one node per completed perfect subtree"
    assert tree_store.catch_up(audit) == tree_store.tree_state(audit)
    assert tables(audit)[1] == nodes, "nothing new, nothing appended"


def test_leaves_follow_notification_ids_across_gaps(app: Zhuisu, audit: AuditStore,
                                                    store) -> None:
    if store.kind == "sqlite":
        pytest.skip("SQLite rowids have no gaps")
    cities(app, 0, 3)
    with audit.engine.begin() as conn:
        conn.exec_driver_sql("SELECT nextval(pg_get_serial_sequence("
                             f"'\"{audit.schema}\".zhuisu_events', 'notification_id'))")
    cities(app, 3, 2)
    tree_store.catch_up(audit)
    leaves, _, _ = tables(audit)
    assert [leaf.position for leaf in leaves] == [1, 2, 3, 4, 6, 7]
    assert verify_log(audit).ok


def test_concurrent_catch_ups_append_every_record_once(app: Zhuisu, audit: AuditStore) -> None:
    cities(app, 0, 40)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            tree_store.catch_up(audit.config, batch=5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert tree_store.tree_state(audit).size == 41
    assert verify_log(audit).ok


def test_records_after_the_tracking_position_are_pending_not_errors(
        app: Zhuisu, audit: AuditStore) -> None:
    cities(app, 0, 3)
    log.make_checkpoint(audit)
    cities(app, 3, 2)
    result = verify_log(audit)
    assert result.ok and (result.tree_size, result.pending) == (4, 2)


def test_proof_of_an_event_newer_than_the_checkpoint_is_refused(
        app: Zhuisu, audit: AuditStore) -> None:
    cities(app, 0, 3)
    log.make_checkpoint(audit)
    cities(app, 3, 1)
    tree_store.catch_up(audit)
    with pytest.raises(NotInLog, match="expected a leaf of checkpoint"):
        log.prove_inclusion(audit, position=5)
    with pytest.raises(NotInLog, match="notification id 99: expected an event that is a leaf"):
        log.prove_inclusion(audit, position=99)


def test_settings_name_the_key_file_and_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_LOG_KEY_FILE", "/secure/log-key")
    monkeypatch.setenv("ZHUISU_LOG_ORIGIN", "county.example/log")
    config = AuditConfig.of("sqlite:///var/z.db")
    assert (config.key_file, config.origin) == (Path("/secure/log-key"), "county.example/log")
    monkeypatch.delenv("ZHUISU_LOG_KEY_FILE")
    assert AuditConfig.of("sqlite:///var/z.db").key_file == Path("var/log-key")
