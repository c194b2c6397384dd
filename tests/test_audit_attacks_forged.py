"""Issue 12, item 3: a forged event appended at the end is not taken into the tree.

Each test: a world with a funded account and a checkpoint → someone with write access to
the events table appends a row behind the application's back (a copy of a real receipt
with its signatures kept and its amount changed, an exact replay, a copy with its
signatures stripped) → the next catch-up stops the tree before it, raises the integrity
alarm naming its notification id, and verification reports it.  Runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from factories import a_county_world, a_funded_account, receipt, run
from typer.testing import CliRunner

from audit import log, tree_store
from audit.alarm import current_alarm
from audit.signatures import verify_signatures
from audit.store import AuditConfig, AuditStore
from audit.verify import verify_log
from domain.signing import SigningKey

ORIGIN = "zhuisu.test/log"


class RawRows:
    """Appends to the events table the way someone with database access would."""

    def __init__(self, audit: AuditStore):
        self.audit = audit
        self.sqlite = audit.dialect == "sqlite"
        self.mark = "?" if self.sqlite else "%s"

    def last(self, topic_suffix: str) -> tuple:
        with self.audit.engine.connect() as conn:
            return self.audit.raw(
                conn, f"SELECT {self.audit.events.pos}, originator_id, originator_version, "
                      f"topic, state FROM {self.audit.events.table} WHERE topic LIKE ? "
                      f"ORDER BY {self.audit.events.pos} DESC LIMIT 1", (f"%{topic_suffix}",))[0]

    def append(self, originator_id: Any, version: int, topic: str, state: bytes) -> int:
        m = self.mark
        with self.audit.engine.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO {self.audit.events.table} (originator_id, "
                                 f"originator_version, topic, state) VALUES ({m}, {m}, {m}, {m})",
                                 (originator_id, version, topic, state))
            return self.audit.raw(conn, f"SELECT MAX({self.audit.events.pos}) FROM "
                                        f"{self.audit.events.table}")[0][0]


@pytest.fixture
def funded(app: Any, tmp_path: Path) -> Any:
    """(app, audit store, raw rows, account): a funded township account, two receipts, a
    checkpoint over everything."""
    world = a_county_world(app)
    account = a_funded_account(world, amount_fen=1_000_000)
    run(world, "FundAccount.Received", account, receipt(1_000))
    audit = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", ORIGIN))
    log.make_checkpoint(audit)
    yield app, audit, RawRows(audit), account
    audit.close()


def forge_receipt(raw: RawRows, change: Any) -> int:
    """A copy of the last receipt as the account's next event, its state changed by
    ``change``; returns its notification id."""
    _, oid, version, topic, state = raw.last("FundAccount.Received")
    return raw.append(oid, version + 1, topic, change(bytes(state)))


def more_amount(state: bytes) -> bytes:
    forged = state.replace(b'"amount_fen":1000,', b'"amount_fen":9000000,')
    assert forged != state
    return forged


def test_a_copied_payment_with_its_amount_changed_stops_the_tree_and_raises_the_alarm(
        funded: Any) -> None:
    app, audit, raw, _ = funded
    before = tree_store.tree_state(audit).size
    forged = forge_receipt(raw, more_amount)
    app.create_region("5399", "后来的市", "city", "52")  # an honest event after it

    state = tree_store.catch_up(audit)
    assert state.size == before, "the tree grew past the forged event"
    alarm = current_alarm(audit)
    assert alarm is not None and alarm.position == forged
    assert "signature 0" in alarm.reason and "does not verify" in alarm.reason
    assert tree_store.catch_up(audit).size == before  # and it stays stopped

    result = verify_log(audit)
    assert (result.kind, result.first_bad_position) == ("signature", forged)
    full = verify_signatures(audit)
    assert (full.bad, full.first.position, full.first.leaf_index) == (1, forged, None)


def test_an_exact_replay_of_a_signed_step_is_refused(funded: Any) -> None:
    _, audit, raw, _ = funded
    before = tree_store.tree_state(audit).size
    forged = forge_receipt(raw, lambda state: state)
    assert tree_store.catch_up(audit).size == before
    assert "replays the FundAccount.Received" in current_alarm(audit).reason
    assert verify_signatures(audit).first.position == forged


def test_a_signed_step_with_its_signatures_stripped_is_refused(funded: Any) -> None:
    _, audit, raw, _ = funded
    def strip(state: bytes) -> bytes:
        changed = more_amount(state)
        return changed[:changed.index(b',"signatures"')] + b',"signatures":[]}'

    forged = forge_receipt(raw, strip)
    tree_store.catch_up(audit)
    alarm = current_alarm(audit)
    assert (alarm.position, "carries no signatures" in alarm.reason) == (forged, True)


def test_a_payment_signed_with_a_key_the_official_never_held_is_refused(
        funded: Any) -> None:
    """Signatures that verify, but by a key the log never gave the official named."""
    app, audit, raw, account = funded
    _, oid, version, topic, state = raw.last("FundAccount.Received")
    body = json.loads(bytes(state))
    body["amount_fen"] = 9_000_000
    body["movement_id"] = str(uuid.uuid4())
    mallory = SigningKey.generate()
    content = {k: v for k, v in body.items() if k not in ("timestamp", "signatures")}
    content["effective_date"] = content["effective_date"]["_data_"]
    for sig in body["signatures"]:
        sig["key_id"] = mallory.key_id
        sig["signature"] = mallory.sign_step("FundAccount.Received", account, content,
                                             sig["official_id"], sig["role"]).signature
    forged = raw.append(oid, version + 1, topic, json.dumps(body).encode())
    tree_store.catch_up(audit)
    alarm = current_alarm(audit)
    assert alarm.position == forged and f"has no key {mallory.key_id}" in alarm.reason


def test_verify_signatures_finds_a_forged_event_the_tree_took_in_before_the_check(
        funded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose tree adopted a forged event (as the code before this check did):
    plain verification cannot tell, ``--signatures`` names it by position and leaf."""
    _, audit, raw, _ = funded
    forged = forge_receipt(raw, more_amount)
    monkeypatch.setattr(tree_store, "check_new_rows", lambda *a: (None, []))
    size = tree_store.catch_up(audit).size
    monkeypatch.undo()
    log.make_checkpoint(audit)
    assert verify_log(audit).ok, "the hash tree alone cannot tell"

    result = verify_log(audit, signatures=True)
    assert (result.kind, result.first.position, result.first.leaf_index) == (
        "signature", forged, size - 1)
    assert result.signatures is not None and result.signatures > 0


def test_an_honest_log_verifies_with_every_signature(funded: Any) -> None:
    _, audit, _, _ = funded
    result = verify_log(audit, signatures=True)
    assert result.ok, result.message
    assert result.signatures == 6  # two receipts (county world: three signers each)
    assert current_alarm(audit) is None


@pytest.mark.usefixtures("restore_logging")  # the CLI configures logging
def test_cli_verify_signatures_names_the_forged_position(
        funded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import app as cli

    _, audit, raw, _ = funded
    forged = forge_receipt(raw, more_amount)
    for name, value in {"ZHUISU_DATABASE_URL": audit.config.database_url,
                        "ZHUISU_LOG_KEY_FILE": str(audit.config.key_file),
                        "ZHUISU_LOG_ORIGIN": ORIGIN}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["verify", "--signatures", "--workers", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith("signature")
    assert f"first position that differs: notification id {forged}" in result.stdout
