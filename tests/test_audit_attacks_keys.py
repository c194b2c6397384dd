"""Issue 12, item 2: the log keys a verifier trusts come from outside the store, and the key
rows must be the history the rotation checkpoints establish.

The attack: an insider rewrites an event, rebuilds the tree, drops the checkpoints and
their seals, replaces the ``log_keys`` rows with a key of their own and signs the
rewritten history with it.  Trusting the store's rows, a kept checkpoint looked like a
mere signature error; trusting the log's key from outside (``--key``, ``--keys``, the log
key file), it shows the rewrite, and every key row no rotation introduced is named by key
id.  Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audit import log, tree_store
from audit.checkpoints import NoteKey
from audit.logkey import load_or_create_key
from audit.store import AuditConfig, AuditStore, log_keys
from audit.verify import verify_log, verify_log_against
from domain.errors import InvalidInput
from tests.test_audit_tamper import RawEvents, regions

ORIGIN = "zhuisu.test/log"


@pytest.fixture
def audit(app: Any, tmp_path: Path) -> Any:
    store = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", ORIGIN))
    regions(app, 0, 12)  # 13 events
    yield store
    store.close()


@pytest.fixture
def verifier(audit: AuditStore, tmp_path: Path) -> Any:
    """The store as a verifier elsewhere sees it: no log key file at hand."""
    store = AuditStore(AuditConfig(audit.config.database_url, tmp_path / "elsewhere" / "none",
                                   ORIGIN))
    yield store
    store.close()


def insider_rewrite(audit: AuditStore, tmp_path: Path) -> AuditStore:
    """Rewrite event 5 and everything that would show it, keys included; the insider's
    store (signing with the insider's key file)."""
    raw = RawEvents(audit)
    raw.run("UPDATE {t} SET state = ? WHERE {pos} = ?", bytes(raw.row(5)[3]) + b" ", 5)
    tree_store.rebuild(audit)
    with audit.engine.begin() as conn:
        for table in ("log_checkpoint_leaves", "log_checkpoints", "log_keys"):
            conn.exec_driver_sql(f"DELETE FROM {audit.table_sql(table)}")
    insider = AuditStore(AuditConfig(audit.config.database_url, tmp_path / "insider-key",
                                     ORIGIN))
    log.make_checkpoint(insider)
    return insider


def test_replaced_key_rows_no_longer_turn_a_rewrite_into_a_signature_error(
        audit: AuditStore, verifier: AuditStore, tmp_path: Path) -> None:
    kept = log.make_checkpoint(audit).note
    real = log.public_key(audit)
    insider = insider_rewrite(audit, tmp_path)
    insider_id = log.public_key(insider).split("+")[1]
    assert verify_log(insider).ok, "trusting its own rows, the store agrees with itself"

    with pytest.raises(InvalidInput, match="from outside the store"):
        verify_log_against(verifier, kept)  # no key given, no key file: refused

    result = verify_log_against(verifier, kept, keys=[real])
    assert result.kind == "rewritten" and "before leaf 13" in result.message
    kinds = [f.kind for f in result.findings]
    assert kinds[0] == "rewritten" and "checkpoint" in kinds
    keys = [f.message for f in result.findings if f.kind == "key"]
    assert any(f"log key {insider_id}" in m and "no rotation introduces" in m for m in keys)
    assert any(f"log key {real.split('+')[1]}" in m and "has no row" in m for m in keys)

    # the log key file is outside the database too: it anchors the trust by default
    assert verify_log_against(audit, kept).kind == "rewritten"


def test_plain_verification_with_the_logs_key_names_the_replaced_key_rows(
        audit: AuditStore, verifier: AuditStore, tmp_path: Path) -> None:
    log.make_checkpoint(audit)
    real = log.public_key(audit)
    insider = insider_rewrite(audit, tmp_path)
    result = verify_log(verifier, keys=[real])
    assert not result.ok
    assert {f.kind for f in result.findings} == {"checkpoint", "key"}
    assert f"log key {log.public_key(insider).split('+')[1]}" in " ".join(
        f.message for f in result.findings)


def test_a_key_row_no_rotation_introduced_is_reported_by_key_id(
        app: Any, audit: AuditStore, tmp_path: Path) -> None:
    log.make_checkpoint(audit)
    rotation = log.rotate_log_key(audit)
    log.make_checkpoint(audit)
    assert verify_log(audit).ok
    key = NoteKey.of_private(ORIGIN, load_or_create_key(tmp_path / "stranger"))
    with audit.engine.begin() as conn:
        conn.execute(log_keys.insert().values(key_id=key.key_id.hex(), vkey=key.vkey,
                                              valid_from="2000-01-01T00:00:00Z",
                                              valid_until=None, introduced_by=rotation.id))
    result = verify_log(audit)
    assert [(f.kind, f"log key {key.key_id.hex()}" in f.message) for f in result.findings] \
        == [("key", True)]


def test_an_edited_key_validity_is_reported(audit: AuditStore) -> None:
    log.make_checkpoint(audit)
    first = log.public_key(audit)
    log.rotate_log_key(audit)
    with audit.engine.begin() as conn:
        conn.execute(log_keys.update().where(log_keys.c.vkey == first)
                     .values(valid_until="2999-01-01T00:00:00Z"))
    result = verify_log(audit)
    assert result.kind == "key" and "expected validity" in result.message
    assert first.split("+")[1] in result.message


def test_the_history_follows_rotations_from_any_trusted_key(
        app: Any, audit: AuditStore, verifier: AuditStore) -> None:
    first_cp = log.make_checkpoint(audit).note
    first = log.public_key(audit)
    log.rotate_log_key(audit)
    log.rotate_log_key(audit)
    app.create_region("5390", "市90", "city", "52")
    kept = log.make_checkpoint(audit).note
    current = log.public_key(audit)
    for trusted in ([first], [current]):
        result = verify_log_against(verifier, [first_cp, kept], keys=trusted)
        assert result.ok, (trusted, result.message)


@pytest.mark.usefixtures("restore_logging")  # the CLI configures logging
def test_cli_verify_with_a_kept_checkpoint_and_the_key_from_outside(
        audit: AuditStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import app as cli

    kept = tmp_path / "kept.txt"
    kept.write_text(log.make_checkpoint(audit).note)
    export = tmp_path / "export.txt"
    export.write_text(log.export_checkpoints(audit, fmt="text"))
    real = log.public_key(audit)
    insider_rewrite(audit, tmp_path)
    for name, value in {"ZHUISU_DATABASE_URL": audit.config.database_url,
                        "ZHUISU_LOG_KEY_FILE": str(tmp_path / "elsewhere" / "none"),
                        "ZHUISU_LOG_ORIGIN": ORIGIN}.items():
        monkeypatch.setenv(name, value)

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(cli, ["verify", "--workers", "1", *args],
                                  catch_exceptions=False)

    refused = invoke("--checkpoint", str(kept))
    assert refused.exit_code == 2 and "--key VKEY or --keys FILE" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    for trust in (["--key", real], ["--keys", str(export)]):
        result = invoke("--checkpoint", str(kept), *trust)
        assert result.exit_code == 3, result.output
        assert result.stdout.startswith("rewritten"), result.stdout
    bad_key = invoke("--key", "zhuisu.test/log+00000000+AAAA")
    assert bad_key.exit_code == 1 and bad_key.stderr.startswith("error: --key")
