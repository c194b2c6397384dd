"""Issue 12 item 11: the log's proofs disclose a stored event only within the jurisdiction.

An inclusion proof's record is the event itself (a household's names, ID hashes and
income).  A token whose jurisdiction covers the event's subject gets it, and the read is
in the access log; any other token — a reviewer of the neighbouring county — gets the
leaf hash and the proof only, which still check against the signed checkpoint.
Checkpoints and the public key stay open to every reader.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from factories import COUNTY, World, a_household_through, another_county, head_name

from audit import proofs
from audit.checkpoints import verify_checkpoint
from audit.merkle import hash_leaf, verify_inclusion
from audit.records import decode_record


@pytest.fixture(autouse=True)
def _log_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_LOG_KEY_FILE", str(tmp_path / "log-key"))


def access_rows(api: Any) -> list[tuple[str, str, str, str]]:
    r = api.client.get("/access-log", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [(e["actor"], e["route"], e["subject_kind"], e["subject_id"])
            for e in r.json()["items"]]


def household_position(api: Any, household: Any) -> int:
    return next(n.id for n in api.zhuisu.recorder.select_notifications(start=1, limit=10**6)
                if str(n.originator_id) == str(household))


def test_a_neighbouring_countys_reviewer_gets_the_leaf_hash_not_the_record(
        api: Any, world: World) -> None:
    county_b = another_county(world)
    hid = a_household_through(world, 0, "H1")
    assert api.client.post("/log/checkpoints").status_code == 201
    key = api.anonymous("GET", "/log/public-key").json()["public_key"]
    position = household_position(api, hid)

    outsider = api.as_("reviewer", county_b, name="施秉县 评估")
    r = outsider.get("/log/proofs/inclusion", params={"position": position})
    assert r.status_code == 200, r.text
    withheld = r.json()
    assert withheld["type"] == "zhuisu-leaf-inclusion-proof/v1"
    assert "record" not in withheld and head_name("H1") not in r.text
    assert "outside the token's jurisdiction" in withheld["record_withheld"]
    # by aggregate id and version: the same
    by_id = outsider.get("/log/proofs/inclusion",
                         params={"originator_id": str(hid), "version": 1}).json()
    assert "record" not in by_id and by_id["leaf_hash"] == withheld["leaf_hash"]

    # the leaf hash is the record's, and the proof checks against the signed checkpoint
    insider = api.as_("reviewer", COUNTY, name="镇远县 评估")
    full = insider.get("/log/proofs/inclusion", params={"position": position}).json()
    record = base64.b64decode(full["record"])
    assert head_name("H1").encode() in decode_record(record).state
    assert base64.b64decode(withheld["leaf_hash"]) == hash_leaf(record)
    checkpoint = verify_checkpoint(withheld["checkpoint"], [key])
    verify_inclusion(base64.b64decode(withheld["leaf_hash"]), withheld["leaf_index"],
                     checkpoint.size, [base64.b64decode(p) for p in withheld["proof"]],
                     checkpoint.root)
    assert proofs.verify_bundle(full, [key]).record.position == position

    # only the insider's read of the record is in the access log
    assert access_rows(api) == [("镇远县 评估", "/log/proofs/inclusion", "household", str(hid))]


def test_no_household_record_of_the_log_reaches_a_token_of_another_county(
        api: Any, world: World) -> None:
    county_b = another_county(world)
    for code in ("H1", "H2", "H3"):
        a_household_through(world, 2, code)
    api.client.post("/log/checkpoints")
    size = api.client.get("/log/checkpoints/latest").json()["size"]
    outsider = api.as_("reviewer", county_b)

    shown = []
    for position in range(1, size + 1):
        bundle = outsider.get("/log/proofs/inclusion", params={"position": position}).json()
        if "record" in bundle:
            shown.append(decode_record(base64.b64decode(bundle["record"])).topic.decode())
    # the neighbouring county's own region is all it may read; no household, no official
    assert shown == ["domain.region:Region.Created"]
    assert [(kind, sid) for _, _, kind, sid in access_rows(api)] == [("region", county_b)]


def test_checkpoints_and_the_public_key_stay_open_and_hold_no_record(
        api: Any, world: World) -> None:
    county_b = another_county(world)
    a_household_through(world, 0, "H1")
    api.client.post("/log/checkpoints")
    outsider = api.as_("reviewer", county_b)
    for url in ("/log/checkpoints", "/log/checkpoints/latest", "/log/export",
                "/log/export?format=json"):
        r = outsider.get(url)
        assert r.status_code == 200, (url, r.text)
        assert head_name("H1") not in r.text
    assert api.anonymous("GET", "/log/public-key").status_code == 200
    assert access_rows(api) == []
