"""Every accepted write is answered with a receipt: the log positions of the events it
stored, under a signed checkpoint made after them, with each event's inclusion proof —
checkable offline with only the log's public key, long after the answer."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from api_support import api_on
from factories import (
    COUNTY,
    TOWNSHIP,
    World,
    a_funded_account,
    a_registered_household,
    household_payment,
    sign,
)
from typer.testing import CliRunner

from audit import log, proofs, tree_store
from audit.errors import ProofBundleError
from audit.merkle import ProofError
from audit.records import decode_record
from cli import app as cli
from runtime.followers import CheckpointBatcher

pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures logging


@pytest.fixture(autouse=True)
def _log_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_LOG_KEY_FILE", str(tmp_path / "log-key"))


def a_payment(world: World) -> dict[str, Any]:
    hid = a_registered_household(world, "H1")
    a_funded_account(world, TOWNSHIP, 1_000_000)
    return sign(world, "FundAccount.Disbursed", world.account(TOWNSHIP),
                household_payment(hid, 30_000))


def public_key(api: Any) -> str:
    return api.anonymous("GET", "/log/public-key").json()["public_key"]


def test_a_command_is_answered_with_a_receipt_that_verifies_offline(
        api: Any, world: World, tmp_path: Path) -> None:
    command = a_payment(world)
    answer = api.as_("fund_officer", COUNTY).post("/commands", json=command)
    assert answer.status_code == 201, answer.text
    receipt = answer.json()["receipt"]
    head = api.zhuisu.recorder.max_notification_id()
    assert answer.headers["server-timing"].startswith("receipt;dur=")  # stored → signed, ms

    assert receipt["type"] == "zhuisu-receipt/v1" and receipt["checkpoint"] is not None
    [entry] = receipt["entries"]
    assert entry["position"] == head  # the disbursement, the last event stored
    verified = proofs.verify_receipt_bundle(receipt, [public_key(api)])
    assert verified.checkpoint.size >= entry["leaf_index"] + 1
    [one] = verified.entries
    assert one.record.topic.endswith(b"FundAccount.Disbursed")
    assert json.loads(one.record.state)["amount_fen"] == 30_000
    # the checkpoint it names is the stored one, signed after the write
    stored = log.get_checkpoint(api.client.app.state.audit, receipt["checkpoint_id"])
    assert stored.note == receipt["checkpoint"]

    # offline: the whole answer saved to a file, only the public key
    saved = tmp_path / "answer.json"
    saved.write_text(answer.text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["verify-proof", str(saved), "--key", public_key(api)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert f"notification ids {head} are leaves {entry['leaf_index']}" in result.stdout


def test_an_altered_receipt_does_not_verify(api: Any, tmp_path: Path) -> None:
    answer = api.client.post("/regions", json={"code": "52", "name": "贵州省",
                                               "level": "province", "parent_code": None})
    assert answer.status_code == 201, answer.text
    receipt = answer.json()["receipt"]
    key = public_key(api)
    proofs.verify_receipt_bundle(receipt, [key])

    record = decode_record(base64.b64decode(receipt["entries"][0]["record"]))
    forged = record._replace(state=record.state.replace("贵州".encode(), "云南".encode()))
    from audit.records import encode_record
    changed = {**receipt, "entries": [{**receipt["entries"][0],
                                       "record": base64.b64encode(encode_record(forged)).decode()}]}
    with pytest.raises(ProofError):
        proofs.verify_receipt_bundle(changed, [key])
    moved = {**receipt, "entries": [{**receipt["entries"][0], "position": record.position + 1}]}
    with pytest.raises(ProofBundleError, match="position"):
        proofs.verify_receipt_bundle(moved, [key])

    saved = tmp_path / "forged.json"
    saved.write_text(json.dumps(changed), encoding="utf-8")
    refused = CliRunner().invoke(cli, ["verify-proof", str(saved), "--key", key])
    assert refused.exit_code != 0


def test_the_replayed_answer_carries_the_same_receipt(api: Any) -> None:
    region = {"code": "52", "name": "贵州省", "level": "province", "parent_code": None}
    first = api.client.post("/regions", json=region, headers={"Idempotency-Key": "r-52"})
    again = api.client.post("/regions", json=region, headers={"Idempotency-Key": "r-52"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["receipt"] == first.json()["receipt"]
    assert first.json()["receipt"]["checkpoint"] is not None


def test_a_write_that_stores_nothing_has_no_receipt(api: Any) -> None:
    made = api.client.post("/log/checkpoints")  # a write, but no event
    assert made.status_code == 201
    assert "receipt" not in made.json()


def test_a_pending_receipt_names_the_leaf_and_the_proof_follows(
        app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes that do not wait (ZHUISU_RECEIPT_WAIT=0) while checkpoints are kept 0.5 s
    apart: the second write's receipt is pending, and its checkpoint follows in time."""
    monkeypatch.setenv("ZHUISU_RECEIPT_WAIT", "0")
    monkeypatch.setenv("ZHUISU_RECEIPT_INTERVAL", "0.5")
    with api_on(app) as api:
        api.client.post("/regions", json={"code": "52", "name": "贵州省",
                                          "level": "province", "parent_code": None})
        answer = api.client.post("/regions", json={"code": "53", "name": "云南省",
                                                   "level": "province", "parent_code": None})
        written = time.monotonic()
        receipt = answer.json()["receipt"]
        assert receipt["checkpoint"] is None
        assert receipt["entries"] == [{"position": 2, "leaf_index": 1}]
        assert receipt["fetch"] == ["/log/proofs/inclusion?position=2"]
        with pytest.raises(ProofBundleError, match="pending"):
            proofs.verify_receipt_bundle(receipt, [public_key(api)])
        audit = api.client.app.state.audit
        while not any(c.checkpoint.size >= 2 for c in log.list_checkpoints(audit)):
            assert time.monotonic() - written < 1.0, "no checkpoint within a second"
            time.sleep(0.01)
        bundle = api.client.get(receipt["fetch"][0]).json()
        assert proofs.verify_bundle(bundle, [public_key(api)]).leaf_index == 1


def test_one_checkpoint_signs_for_writes_that_wait_together(api: Any) -> None:
    """Group commit: writes that wait while a checkpoint is being signed share the next."""
    audit = api.client.app.state.audit
    batcher = CheckpointBatcher(audit)
    for n in range(1, 9):
        api.zhuisu.create_region(f"5{n}", "省", "province", None)  # positions 1..8
    tree_store.catch_up(audit)
    positions, got = list(range(1, 9)), []
    start = threading.Barrier(len(positions))

    def wait(position: int) -> None:
        start.wait()
        got.append((position, batcher.covering(position, 5.0)))

    threads = [threading.Thread(target=wait, args=(p,)) for p in positions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.stop()
    assert sorted(p for p, _ in got) == positions
    assert all(record is not None and record.checkpoint.size >= p for p, record in got)
    signed = log.list_checkpoints(audit)
    assert 1 <= len(signed) < len(positions)  # fewer checkpoints than writes
