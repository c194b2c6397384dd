"""Full verification checks every stored leaf and node, not only the records.

The fast path of ``audit.scan`` compares each level of a page's stored nodes as one
concatenated blob, and on PostgreSQL hashes leaf inputs the server built; these tests edit
the tree tables behind the application's back so that a blob comparison alone would be
fooled (a hash split across two rows, a row missing), hold the server's encoding to
``records.encode_record`` byte for byte, check that a clean store never needs the slow
path, and that forked and spawned workers agree.  Runs on SQLite and PostgreSQL, with pages
of 8 leaves unless said otherwise, in-line and in worker processes.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from audit import log, tree_store
from audit.records import encode_record
from audit.scan import Span
from audit.store import AuditConfig, AuditStore
from audit.verify import verify_log
from domain.application import Zhuisu
from tests.test_audit_tamper import RawEvents, regions

PAGE = 8


@pytest.fixture
def audit(app: Zhuisu, tmp_path: Path):
    """25 events, a checkpoint at 13 leaves and one at 25 (as in test_audit_tamper)."""
    store = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", "zhuisu.test/log"))
    regions(app, 0, 12)
    log.make_checkpoint(store)
    regions(app, 12, 12)
    log.make_checkpoint(store)
    yield store
    store.close()


def sql(audit: AuditStore, statement: str, *params: object) -> list[tuple]:
    statement = statement.format(leaves=audit.table_sql("merkle_leaves"),
                                 nodes=audit.table_sql("merkle_nodes"))
    with audit.engine.begin() as conn:
        result = conn.exec_driver_sql(
            statement if audit.dialect == "sqlite" else statement.replace("?", "%s"), params)
        return result.fetchall() if result.returns_rows else []


def first(audit: AuditStore, workers: int = 1):
    return findings(audit, workers)[0]


def findings(audit: AuditStore, workers: int = 1) -> list:
    result = verify_log(audit, page=PAGE, workers=workers)
    assert not result.ok, "the change was not detected"
    return list(result.findings)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_clean_store_verifies_with_every_page_size(audit: AuditStore, workers: int) -> None:
    for page in (2, 4, 8, 16, 32, 4096):
        result = verify_log(audit, page=page, workers=workers)
        assert result.ok, (page, result.message)
        assert (result.tree_size, result.records) == (25, 25)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_edited_leaf_hash_is_located(audit: AuditStore, workers: int) -> None:
    sql(audit, "UPDATE {leaves} SET leaf_hash = ? WHERE leaf_index = ?", bytes(32), 9)
    found = findings(audit, workers)
    assert ("tree", 9, 10) in [(f.kind, f.leaf_index, f.position) for f in found]
    assert ("tree", 8) in [(f.kind, f.leaf_index) for f in found], "the node above it"


def test_a_leaf_hash_split_across_two_rows_is_located(audit: AuditStore) -> None:
    """The concatenation of the page's leaf hashes is unchanged; each row is not."""
    (h4,), (h5,) = sql(audit, "SELECT leaf_hash FROM {leaves} WHERE leaf_index IN (4, 5) "
                              "ORDER BY leaf_index")
    h4, h5 = bytes(h4), bytes(h5)
    sql(audit, "UPDATE {leaves} SET leaf_hash = ? WHERE leaf_index = 4", h4[:31])
    sql(audit, "UPDATE {leaves} SET leaf_hash = ? WHERE leaf_index = 5", h4[31:] + h5)
    found = findings(audit)
    assert ("tree", 4) in [(f.kind, f.leaf_index) for f in found]


def test_an_edited_leaf_position_is_located(audit: AuditStore) -> None:
    sql(audit, "UPDATE {leaves} SET position = ? WHERE leaf_index = ?", 1000, 9)
    found = first(audit)
    assert (found.kind, found.leaf_index, found.position) == ("inserted", 9, 10)


def test_a_node_hash_split_across_two_rows_is_located(audit: AuditStore) -> None:
    """The concatenation of the level's stored nodes is unchanged; each row is not."""
    (a,), (b,) = sql(audit, "SELECT hash FROM {nodes} WHERE level = 1 AND idx IN (4, 5) "
                            "ORDER BY idx")
    a, b = bytes(a), bytes(b)
    sql(audit, "UPDATE {nodes} SET hash = ? WHERE level = 1 AND idx = 4", a[:31])
    sql(audit, "UPDATE {nodes} SET hash = ? WHERE level = 1 AND idx = 5", a[31:] + b)
    found = findings(audit)
    assert ("tree", 8) in [(f.kind, f.leaf_index) for f in found]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_missing_node_row_is_located(audit: AuditStore, workers: int) -> None:
    sql(audit, "DELETE FROM {nodes} WHERE level = 1 AND idx = 6")
    found = first(audit, workers)
    assert (found.kind, found.leaf_index) == ("tree", 12)
    assert "no row" in found.message


def test_a_missing_node_above_page_level_is_located(audit: AuditStore) -> None:
    sql(audit, "DELETE FROM {nodes} WHERE level = 4 AND idx = 0")
    found = first(audit)
    assert (found.kind, found.leaf_index) == ("tree", 0)


def test_a_changed_record_in_the_last_partial_page_is_located(audit: AuditStore) -> None:
    raw = RawEvents(audit)
    raw.run("UPDATE {t} SET state = ? WHERE {pos} = ?", bytes(raw.row(25)[3]) + b" ", 25)
    found = first(audit)
    assert (found.kind, found.position, found.leaf_index, found.fields) == (
        "changed", 25, 24, ("state",))


def test_an_extra_record_between_pages_is_located(audit: AuditStore) -> None:
    """A record inserted right after a page's last leaf belongs to the next page's range."""
    raw = RawEvents(audit)
    raw.shift(9, +1)
    raw.insert_copy_at(9, of_position=3)
    found = first(audit)
    assert (found.kind, found.position, found.leaf_index) == ("inserted", 9, 8)


@pytest.fixture
def odd_rows(audit: AuditStore) -> AuditStore:
    """Rows the application never writes but the record encoding must take as they are: a
    non-ASCII topic, a negative version, an empty state, a state with NUL bytes."""
    raw = RawEvents(audit)
    for version, topic, state in [(-5, "domain.区域:Region.Created", b""),
                                  (7, "t", b"\x00\x01\x00\xff" * 70),
                                  (2**62, "domain.x:Y.Z", '{"名":"贵州"}'.encode())]:
        oid = uuid.uuid4()
        raw.run("INSERT INTO {t} (originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?)", oid.hex if raw.sqlite else oid, version, topic, state)
    tree_store.catch_up(audit)
    return audit


def test_the_servers_record_encoding_is_encode_record_byte_for_byte(odd_rows: AuditStore
                                                                    ) -> None:
    """PostgreSQL builds each leaf input in SQL (``EventRows.leaf_inputs``); it must be the
    bytes ``records.encode_record`` gives for the row as the reference reader reads it."""
    audit = odd_rows
    if audit.dialect == "sqlite":
        pytest.skip("SQLite rows are encoded in Python (records.leaf_hashes)")
    with audit.engine.connect() as conn:
        reference = audit.events.between(conn, 0)
        built = audit.events.leaf_inputs(conn, -(2**63), 1000)
    assert len(reference) == len(built) == 28
    assert [(p, bytes(data)) for p, data in built] == [
        (r[0], b"\x00" + encode_record(r)) for r in reference]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_clean_store_never_takes_the_slow_path(odd_rows: AuditStore, workers: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path alone accepts every page of a clean store (so the slow path, which
    would also accept it, cannot be hiding a fast path that rejects good records)."""
    def no_slow_path(*args: object) -> None:
        raise AssertionError("the slow path was taken on a clean store")

    monkeypatch.setattr(Span, "_slow_page", no_slow_path)
    for page in (2, 8, 4096):
        result = verify_log(odd_rows, page=page, workers=workers)
        assert result.ok, result.message
        assert (result.tree_size, result.records) == (28, 28)


def test_workers_without_fork_are_spawned_with_the_same_result(
        audit: AuditStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where fork is not available each worker is a fresh interpreter opening the store."""
    import audit.verify as verify_module

    raw = RawEvents(audit)
    raw.run("UPDATE {t} SET state = ? WHERE {pos} = ?", bytes(raw.row(20)[3]) + b" ", 20)
    forked = verify_log(audit, page=PAGE, workers=2)
    monkeypatch.setattr(verify_module.multiprocessing, "get_all_start_methods",
                        lambda: ["spawn"])
    spawned = verify_log(audit, page=PAGE, workers=2)
    assert spawned.findings == forked.findings
    assert (spawned.first.kind, spawned.first.position) == ("changed", 20)
