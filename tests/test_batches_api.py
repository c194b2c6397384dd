"""Batches over HTTP: lists, a batch's reconciliation with its signers, a roster import,
jurisdiction and the access log; a row's proof bundle checks offline (``zhuisu
verify-proof``), and fails when the row, the path or the manifest is changed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audit.batch_proofs import BATCH_ROW, verify_batch_row_bundle
from audit.errors import ProofInvalid
from cli import app as cli_app
from domain.signing import b64
from factories import COUNTY_B, TOWNSHIP, a_funded_account, a_registered_household, another_county
from factories import key_for, official, official_id
from test_batches import order, payment_rows, roster_command, roster_rows
from test_batches_read import bank_return

pytestmark = pytest.mark.usefixtures("close_read_models", "restore_logging")
SIGNERS = [official(who, TOWNSHIP) for who in ("finance_accountant", "head", "party_secretary")]


@pytest.fixture(autouse=True)
def _log_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_LOG_KEY_FILE", str(tmp_path / "log-key"))


@pytest.fixture
def batch(api: Any, world: Any) -> dict[str, Any]:
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    households = [a_registered_household(world, f"P{i}") for i in range(3)]
    rows = payment_rows(households, [10_000, 20_000, 30_000])
    command = order(world, account, rows)
    world.app.execute(command)
    bid = command["content"]["batch_id"]
    failed = [{"of_movement_id": rows[2]["movement_id"], "amount_fen": 30_000,
               "reason": "账户冻结"}]
    bank_return(world, account, bid, failed, 2, 30_000)
    return {"account": str(account), "batch_id": bid, "rows": rows, "households": households}


def entries(api: Any, **params: Any) -> list[dict]:
    return api.client.get("/access-log", params={"limit": 500, **params}).json()["items"]


def test_batches_list_show_and_reconcile(api: Any, world: Any, batch: dict) -> None:
    inspector = api.as_("inspector", TOWNSHIP, name="inspector")
    listed = inspector.get("/batches").json()
    assert [b["batch_id"] for b in listed["items"]] == [batch["batch_id"]]
    rec = listed["items"][0]["reconciliation"]
    assert rec["state"] == "returned"
    assert rec["credited"] == {"rows": 2, "fen": 30_000}
    assert rec["returned"] == {"rows": 1, "fen": 30_000}
    assert api.client.get("/batches", params={"account": batch["account"]}).json()["items"]
    assert api.client.get("/batches", params={"state": "pending"}).json()["items"] == []
    assert api.client.get("/batches", params={"state": "nothing"}).status_code == 422

    view = inspector.get(f"/batches/{batch['batch_id']}", params={"limit": 2}).json()
    assert view["manifest"]["row_count"] == 3 and view["manifest"]["total_fen"] == 60_000
    assert {(s["code"], s["role"]) for s in view["signers"]} == {
        (SIGNERS[0], "preparer"), (SIGNERS[1], "reviewer"), (SIGNERS[2], "approver")}
    assert all(s["name"] for s in view["signers"])
    assert [r["state"] for r in view["rows"]] == ["credited", "credited"]
    assert view["next_offset"] == 2
    last = inspector.get(f"/batches/{batch['batch_id']}", params={"offset": 2}).json()
    assert last["rows"][0]["state"] == "returned"
    assert last["rows"][0]["returned_reason"] == "账户冻结"
    # the reads are in the access log: the account and the households shown
    read = {(e["subject_kind"], e["subject_id"]) for e in entries(api, role="inspector")}
    assert ("account", batch["account"]) in read
    assert ("household", str(batch["households"][0])) in read
    assert ("household", str(batch["households"][2])) in read
    # outside the token's jurisdiction: refused, and not listed
    another_county(world)
    outsider = api.as_("inspector", COUNTY_B)
    refused = outsider.get(f"/batches/{batch['batch_id']}")
    assert (refused.status_code, refused.json()["rule"]) == (403, "OutsideJurisdiction")
    assert outsider.get("/batches").json()["items"] == []
    assert api.client.get("/batches/00000000-0000-0000-0000-000000000000").status_code == 404


def test_a_roster_import_over_http(api: Any, world: Any) -> None:
    command = roster_command(world, roster_rows(world, 2))
    world.app.execute(command)
    import_id = command["content"]["import_id"]
    view = api.as_("reviewer", TOWNSHIP[:6]).get(f"/rosters/{import_id}").json()
    assert view["manifest"]["source_sha256"] == "ef" * 32
    assert view["households_imported"] == 2
    assert [h["household_code"] for h in view["households"]] == ["GJ0000", "GJ0001"]
    assert len(view["signers"]) == 3
    another_county(world)
    assert api.as_("reviewer", COUNTY_B).get(f"/rosters/{import_id}").status_code == 403


def cli(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), catch_exceptions=False)


def test_a_rows_proof_verifies_offline_and_a_change_does_not(api: Any, world: Any,
                                                              batch: dict,
                                                              tmp_path: Path) -> None:
    assert api.client.post("/log/checkpoints").status_code == 201
    vkey = api.client.get("/log/public-key").json()["public_key"]
    r = api.as_("inspector", TOWNSHIP).get(f"/batches/{batch['batch_id']}/rows/1/proof")
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == BATCH_ROW and bundle["row_index"] == 1
    assert bundle["row"]["movement_id"] == batch["rows"][1]["movement_id"]
    officials = [{"official_id": official_id(code), "key_id": key_for(code).key_id,
                  "public_key": b64(key_for(code).public_bytes)} for code in SIGNERS]
    ok = verify_batch_row_bundle(bundle, [vkey], officials)
    assert (ok.row_index, ok.row_count, ok.signatures_checked) == (1, 3, 3)

    path = tmp_path / "row.json"
    path.write_text(json.dumps(bundle))
    keys = tmp_path / "officials.json"
    keys.write_text(json.dumps(officials))
    result = cli("verify-proof", str(path), "--key", vkey, "--officials", str(keys))
    assert result.exit_code == 0, result.stderr
    assert "row 1 of 3" in result.stdout and "3 signatures verify" in result.stdout

    def refused(changed: dict, why: str, officials_file: Path | None = None) -> None:
        path.write_text(json.dumps(changed))
        extra = ["--officials", str(officials_file)] if officials_file else []
        out = cli("verify-proof", str(path), "--key", vkey, *extra)
        assert out.exit_code == 3, (why, out.stdout, out.stderr)
        assert out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1
        with pytest.raises(ProofInvalid):
            verify_batch_row_bundle(changed, [vkey], json.loads(officials_file.read_text())
                                    if officials_file else None)

    forged = copy.deepcopy(bundle)
    forged["row"]["amount_fen"] = 20_001
    refused(forged, "the row changed")
    forged = copy.deepcopy(bundle)
    forged["path"][0] = "00" * 32
    refused(forged, "the path changed")
    forged = copy.deepcopy(bundle)
    forged["rows_root"] = "11" * 32
    refused(forged, "the root changed")
    forged = copy.deepcopy(bundle)
    forged["manifest"]["content"]["total_fen"] = 1
    refused(forged, "the manifest's content changed")
    forged = copy.deepcopy(bundle)
    forged["row_proof"], forged["manifest_proof"] = bundle["manifest_proof"], bundle["row_proof"]
    refused(forged, "the records swapped")
    wrong_keys = tmp_path / "wrong.json"
    wrong_keys.write_text(json.dumps([{**o, "public_key": officials[0]["public_key"]}
                                      for o in officials]))
    refused(bundle, "another official's key", wrong_keys)


def test_the_batch_commands(api: Any, world: Any, batch: dict, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_DATABASE_URL", world.app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(tmp_path / "pepper"))
    listed = cli("batch", "list", "--region", TOWNSHIP)
    assert listed.exit_code == 0, listed.stderr
    assert [b["batch_id"] for b in json.loads(listed.stdout)["items"]] == [batch["batch_id"]]
    assert json.loads(cli("batch", "list", "--state", "pending").stdout)["items"] == []
    assert cli("batch", "list", "--state", "lost").exit_code == 1
    rec = json.loads(cli("batch", "reconcile", batch["batch_id"]).stdout)
    assert rec["credited"] == {"rows": 2, "fen": 30_000} and rec["state"] == "returned"
    shown = json.loads(cli("batch", "show", batch["batch_id"]).stdout)
    assert [r["state"] for r in shown["rows"]] == ["credited", "credited", "returned"]
    missing = cli("batch", "show", "00000000-0000-0000-0000-000000000000")
    assert missing.exit_code == 2 and "NotFound" in missing.stderr
    assert api.client.post("/log/checkpoints").status_code == 201
    vkey = api.client.get("/log/public-key").json()["public_key"]
    out = tmp_path / "row2.json"
    assert cli("batch", "proof", batch["batch_id"], "2", "--out", str(out)).exit_code == 0
    checked = cli("verify-proof", str(out), "--key", vkey)
    assert checked.exit_code == 0, checked.stderr
    assert "row 2 of 3" in checked.stdout


def test_the_batch_page_of_the_console(api: Any, world: Any, batch: dict) -> None:
    """支付令 page: manifest, signers by name, 对账 in 元, rows with state and proof links;
    linked from the account page; the reads are in the access log."""
    import datetime as dt
    import re

    import pyotp

    from domain.region import Region

    people = api.client.app.state.accounts
    new = people.create("batch-reader", "县纪委 王检查", "inspector",
                        world.app.load(Region, Region.create_id(TOWNSHIP)),
                        created_by="test", now=dt.datetime.now(dt.UTC))
    client = api.client
    client.headers.pop("Authorization", None)
    form = client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    signed_in = client.post("/console/login", data={
        "username": "batch-reader", "password": new.password, "csrf": csrf,
        "code": pyotp.TOTP(new.totp_secret).now()}, follow_redirects=False)
    assert signed_in.status_code in (302, 303), signed_in.text[:300]
    account_page = client.get(f"/console/money/accounts/{batch['account']}").text
    assert f"/console/batches/{batch['batch_id']}" in account_page
    html = client.get(f"/console/batches/{batch['batch_id']}").text
    assert "支付令" in html and "镇财支〔2025〕3号" in html
    assert "谁签字谁负责" in html and "对账" in html
    assert "600.00" in html and "300.00" in html  # 下达 600 元, 入账 / 退回 300 元
    assert html.count("已入账") == 2 and "已退回" in html and "账户冻结" in html
    assert f"/batches/{batch['batch_id']}/rows/2/proof" in html
    for code in SIGNERS:
        assert f"/console/officials/{official_id(code)}" in html


def test_a_batch_goes_through_post_commands_with_its_rows(api: Any, world: Any) -> None:
    """The envelope's ``rows`` reach the domain; a step that carries no rows refuses them."""
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    households = [a_registered_household(world, f"C{i}") for i in range(2)]
    rows = payment_rows(households, [11_000, 12_000])
    command = order(world, account, rows)
    officer = api.as_("fund_officer", TOWNSHIP, name="officer")
    answer = officer.post("/commands", json=command)
    assert answer.status_code == 201, answer.text
    assert answer.json()["receipt"] is not None
    assert len(answer.json()["receipt"]["entries"]) == 3  # the manifest and its two rows
    assert officer.post("/commands", json=command).status_code == 200  # an exact retry
    changed = copy.deepcopy(command)
    changed["rows"][0]["amount_fen"] = 11_001
    refused = officer.post("/commands", json=changed)
    assert refused.status_code == 422
    assert refused.json()["field"] == "content.total_fen"
    from factories import receipt, sign
    plain = sign(world, "FundAccount.Received", account, receipt(5_000))
    refused = officer.post("/commands", json={**plain, "rows": rows})
    assert refused.status_code == 422 and refused.json()["field"] == "rows"
