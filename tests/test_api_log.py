"""The log over HTTP: the public key is anonymous; checkpoints and proofs need a token;
a proof fetched over HTTP verifies offline with nothing but the public key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit import proofs


@pytest.fixture(autouse=True)
def _log_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_LOG_KEY_FILE", str(tmp_path / "log-key"))


def a_few_events(api: Any) -> None:
    with api.zhuisu.batch():
        api.zhuisu.create_region("52", "贵州省", "province", None)
        for i in range(5):
            api.zhuisu.create_region(f"52{i:02d}", f"市{i}", "city", "52")


def test_the_public_key_needs_no_token_but_checkpoints_do(api: Any) -> None:
    r = api.anonymous("GET", "/log/public-key")
    assert r.status_code == 200
    assert r.json()["public_key"].startswith("zhuisu.example/log+")
    assert api.anonymous("GET", "/log/checkpoints").status_code == 401


def test_only_an_administrator_signs_a_checkpoint(api: Any) -> None:
    a_few_events(api)
    refused = api.as_("reviewer").post("/log/checkpoints")
    assert refused.status_code == 403
    assert refused.json()["rule"] == "RoleNotPermitted"
    made = api.client.post("/log/checkpoints")
    assert made.status_code == 201, made.text
    assert made.json()["size"] == 6
    latest = api.as_("reviewer").get("/log/checkpoints/latest").json()
    assert latest["id"] == made.json()["id"] and latest["note"] == made.json()["note"]


def test_an_inclusion_proof_from_the_api_verifies_offline(api: Any) -> None:
    a_few_events(api)
    api.client.post("/log/checkpoints")
    key = api.anonymous("GET", "/log/public-key").json()["public_key"]
    bundle = api.as_("inspector").get("/log/proofs/inclusion", params={"position": 3}).json()

    verified = proofs.verify_bundle(bundle, [key])
    assert (verified.leaf_index, verified.record.position) == (2, 3)
    checked = api.as_("reviewer").post("/log/proofs/verify",
                                       json={"bundle": bundle, "public_keys": [key]})
    assert checked.json() == {"ok": True, "kind": "inclusion", "leaf_index": 2, "position": 3,
                              "tree_size": 6}


def test_a_consistency_proof_between_two_checkpoints(api: Any) -> None:
    a_few_events(api)
    first = api.client.post("/log/checkpoints").json()["id"]
    with api.zhuisu.batch():
        api.zhuisu.create_region("53", "云南省", "province", None)
    api.client.post("/log/checkpoints")
    key = api.anonymous("GET", "/log/public-key").json()["public_key"]
    bundle = api.client.get("/log/proofs/consistency", params={"old": first}).json()
    old, new = proofs.verify_bundle(bundle, [key])
    assert (old.size, new.size) == (6, 7)


def test_a_proof_of_an_unknown_event_is_a_problem(api: Any) -> None:
    a_few_events(api)
    api.client.post("/log/checkpoints")
    r = api.client.get("/log/proofs/inclusion", params={"position": 999})
    assert r.status_code == 404
    assert r.json()["field"] == "position"


def test_full_verification_over_http(api: Any) -> None:
    a_few_events(api)
    api.client.post("/log/checkpoints")
    result = api.as_("reviewer").get("/log/verify").json()
    assert result["ok"] is True and result["tree_size"] == 6
