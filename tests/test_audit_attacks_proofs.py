"""Issue 12, item 7: ``zhuisu verify-proof`` on a bad proof prints one line and exits with
its documented code — 1 when the bundle or key cannot be read, 3 when it is read but does
not verify — never a traceback.  The proofs are made from a store (SQLite and
PostgreSQL); their verification is offline.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from audit import log
from audit.checkpoints import NoteKey
from audit.store import AuditConfig, AuditStore
from tests.test_audit_tamper import regions

ORIGIN = "zhuisu.test/log"


@pytest.fixture
def proof(app: Any, tmp_path: Path) -> Any:
    """(inclusion bundle of event 4, consistency bundle, the log's vkey)."""
    audit = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", ORIGIN))
    regions(app, 0, 6)
    first = log.make_checkpoint(audit)
    regions(app, 6, 3)
    log.make_checkpoint(audit)
    yield (log.prove_inclusion(audit, position=4), log.prove_consistency(audit, first.id),
           log.public_key(audit))
    audit.close()


def flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def edited(change: Callable[[dict], Any]) -> Callable[[dict], str]:
    """The bundle's JSON after ``change`` edited a copy of it in place."""
    def make(bundle: dict) -> str:
        b = json.loads(json.dumps(bundle))
        change(b)
        return json.dumps(b)
    return make


OTHER_KEY = NoteKey.of_private(ORIGIN, Ed25519PrivateKey.generate()).vkey
CASES: dict[str, tuple[Callable[[dict], str], str | None, int, str]] = {
    # name: (bundle text, key (None: the log's), exit code, words in the one line)
    "not JSON": (lambda b: "{not json", None, 1, "ProofBundleError"),
    "a JSON list": (lambda b: "[1, 2]", None, 1, "ProofBundleError"),
    "missing field": (edited(lambda b: b.pop("record")), None, 1, "'record'"),
    "proof not a list": (edited(lambda b: b.update(proof="AAAA")), None, 1, "proof"),
    "mistyped hashes": (edited(lambda b: b.update(proof=[1, 2])), None, 1, "proof[0]"),
    "leaf index text": (edited(lambda b: b.update(leaf_index="3")), None, 1, "leaf_index"),
    "checkpoint garbled": (edited(lambda b: b.update(checkpoint="x")), None, 1,
                           "CheckpointFormatError"),
    "wrong hash": (edited(lambda b: b["proof"].__setitem__(0, flip(b["proof"][0]))), None, 3,
                   "ProofInvalid"),
    "proof cut short": (edited(lambda b: b["proof"].pop()), None, 3, "ProofInvalid"),
    "another leaf index": (edited(lambda b: b.update(leaf_index=2)), None, 3, "ProofInvalid"),
    "leaf index out of range": (edited(lambda b: b.update(leaf_index=10**30)), None, 3,
                                "ProofInvalid"),
    "record not canonical": (edited(lambda b: b.update(record="AAAA")), None, 3,
                             "RecordFormatError"),
    "checkpoint text changed": (edited(lambda b: b.update(
        checkpoint=b["checkpoint"].replace("\n10\n", "\n9\n"))), None, 3,
        "CheckpointSignatureError"),
    "wrong key": (edited(lambda b: None), OTHER_KEY, 3, "CheckpointSignatureError"),
    "malformed key": (edited(lambda b: None), f"{ORIGIN}+00000000+AAAA", 1, "--key"),
}


def invoke(bundle_text: str, key: str, tmp_path: Path) -> Any:
    from cli import app as cli

    path = tmp_path / "bundle.json"
    path.write_text(bundle_text)
    return CliRunner().invoke(cli, ["verify-proof", str(path), "--key", key],
                              catch_exceptions=False)


def test_each_bad_inclusion_proof_is_one_line_and_its_exit_code(
        proof: Any, tmp_path: Path) -> None:
    """Every case of ``CASES`` (one store for them all: each runs the CLI offline)."""
    inclusion, _, vkey = proof
    wrong = {}
    for case, (make, key, code, words) in CASES.items():
        result = invoke(make(inclusion), key or vkey, tmp_path)
        lines = result.stderr.strip().splitlines()
        if (result.exit_code != code or len(lines) != 1 or not lines[0].startswith("error: ")
                or words not in lines[0] or "Traceback" in result.output or result.stdout):
            wrong[case] = (result.exit_code, result.output)
    assert not wrong, wrong


def test_the_good_proofs_still_verify(proof: Any, tmp_path: Path) -> None:
    inclusion, consistency, vkey = proof
    assert invoke(json.dumps(inclusion), vkey, tmp_path).exit_code == 0
    assert invoke(json.dumps(consistency), vkey, tmp_path).exit_code == 0


def test_a_consistency_proof_with_a_wrong_hash_exits_3(proof: Any, tmp_path: Path) -> None:
    _, consistency, vkey = proof
    consistency["proof"][0] = flip(consistency["proof"][0])
    result = invoke(json.dumps(consistency), vkey, tmp_path)
    assert result.exit_code == 3 and result.stderr.startswith("error: ProofInvalid: ")


def test_a_missing_bundle_file_exits_1(proof: Any, tmp_path: Path) -> None:
    from cli import app as cli

    result = CliRunner().invoke(cli, ["verify-proof", str(tmp_path / "none.json"), "--key",
                                      proof[2]], catch_exceptions=False)
    assert result.exit_code == 1 and result.stderr.startswith("error: cannot read")


def test_the_api_answers_a_proof_with_wrong_hashes_with_a_problem_not_a_500(
        api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_LOG_KEY_FILE", str(tmp_path / "api-log-key"))
    regions(api.zhuisu, 0, 4)
    api.client.post("/log/checkpoints")
    key = api.anonymous("GET", "/log/public-key").json()["public_key"]
    bundle = api.client.get("/log/proofs/inclusion", params={"position": 3}).json()
    bundle["proof"][0] = flip(bundle["proof"][0])
    answer = api.as_("reviewer").post("/log/proofs/verify",
                                      json={"bundle": bundle, "public_keys": [key]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["rule"] == "ProofInvalid"
