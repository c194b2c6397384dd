"""Issue 14 point 1: the signing queue (签字队列), over HTTP and the CLI, on both stores.

A step waits for its signatures: the preparer submits a draft, each official fetches the
exact bytes to sign, signs them where the key is and adds only the signature; the last
one runs the command once, with the checks of ``POST /commands``.  (The browser's part,
signing with WebCrypto in the console, is ``test_console_drafts.py``.)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from factories import (
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_registered_household,
    application,
    household_payment,
    key_for,
    official,
    official_id,
)
from typer.testing import CliRunner

from access.drafts import Drafts, Via, drafts_on, required_roles
from access.roles import ApiRole, Principal
from api_support import refused
from cli import app as cli_app
from domain.application import STEPS
from domain.fund_account import FundAccount
from domain.household import Household
from domain.signing import SigningKey, b64
from projections.aggregates import step_catalogue

pytestmark = pytest.mark.usefixtures("close_read_models")

PREPARER = official("finance_accountant", TOWNSHIP)
REVIEWER = official("head", TOWNSHIP)
APPROVER = official("party_secretary", TOWNSHIP)
runner = CliRunner()


def sign_over(message_b64: str, key: SigningKey) -> str:
    """What a signer does on their own machine: sign the bytes the server gave."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(key.private_bytes())
    return b64(private.sign(base64.b64decode(message_b64)))


def signature(caller: Any, draft_id: str, code: str, role: str,
              key: SigningKey | None = None) -> dict[str, str]:
    """Fetch the message for (draft, official, role, key) and sign it with the key."""
    key = key or key_for(code)
    r = caller.get(f"/drafts/{draft_id}/message", params={
        "official_id": official_id(code), "role": role, "key_id": key.key_id})
    assert r.status_code == 200, r.text
    return {"official_id": official_id(code), "role": role, "key_id": key.key_id,
            "signature": sign_over(r.json()["message_base64"], key)}


@pytest.fixture
def money(api: Any, world: World) -> dict[str, Any]:
    """A funded township account, a registered household, a fund officer of the township."""
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    household = a_registered_household(world, "H1")
    return {"account": str(account), "household": str(household),
            "officer": api.as_("fund_officer", TOWNSHIP, "乡财政所 李经办")}


def a_payment_draft(money: dict[str, Any], amount_fen: int = 120_000, **kw: Any) -> Any:
    content = household_payment(money["household"], amount_fen)
    return money["officer"].post("/drafts", json={
        "step": "FundAccount.Disbursed", "subject": money["account"], "content": content, **kw})


def cli_env(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_DATABASE_URL", app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(app.pepper_file))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")


def key_file(tmp_path: Path, code: str) -> Path:
    key = key_for(code)
    path = tmp_path / f"{code.replace('@', '_')}.key"
    path.write_text(json.dumps({"algorithm": "Ed25519", "key_id": key.key_id,
                                "public_key": b64(key.public_bytes),
                                "private_key": b64(key.private_bytes())}))
    path.chmod(0o600)
    return path


def disbursements(app: Any, account: str) -> list[Any]:
    return [e for e in app.stored_events(FundAccount.create_id(TOWNSHIP, "central"))
            if type(e).__qualname__.endswith("Disbursed")] if account else []


@pytest.mark.usefixtures("restore_logging")
def test_three_officials_sign_from_http_and_the_cli_and_the_step_runs_once(
        api: Any, world: World, money: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    r = a_payment_draft(money)
    assert r.status_code == 201, r.text
    draft = r.json()
    assert r.headers["Location"] == f"/drafts/{draft['id']}"
    assert draft["state"] == "open" and draft["signatures"] == []
    assert draft["missing_roles"] == ["preparer", "reviewer", "approver"]
    did = draft["id"]

    # 经办 over HTTP
    officer = money["officer"]
    r = officer.post(f"/drafts/{did}/signatures", json=signature(officer, did, PREPARER,
                                                                 "preparer"))
    assert r.status_code == 200, r.text
    assert r.json()["missing_roles"] == ["reviewer", "approver"]
    assert "receipt" not in r.json()

    # 审核 from the CLI, on the store, with a key file that never leaves the machine
    cli_env(world.app, monkeypatch)
    listed = runner.invoke(cli_app, ["draft", "list", "--waiting-for", official_id(REVIEWER)])
    assert listed.exit_code == 0, listed.output
    assert did in listed.output
    signed = runner.invoke(cli_app, ["sign", "--draft", did, "--key",
                                     str(key_file(tmp_path, REVIEWER)), "--official",
                                     official_id(REVIEWER), "--role", "reviewer"])
    assert signed.exit_code == 0, signed.output
    assert json.loads(signed.stdout)["missing_roles"] == ["approver"]
    assert disbursements(world.app, money["account"]) == []  # not yet

    # 审批 over HTTP by another official, with another token: the step runs now
    approver = api.as_("fund_officer", TOWNSHIP, "镇长 王审批")
    r = approver.post(f"/drafts/{did}/signatures", json=signature(approver, did, APPROVER,
                                                                  "approver"))
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["state"] == "executed" and done["missing_roles"] == []
    assert done["result"]["recorded"] is True and done["result"]["positions"]
    assert done["receipt"]["type"] == "zhuisu-receipt/v1"  # as POST /commands answers
    assert [e["position"] for e in done["receipt"]["entries"]] == done["result"]["positions"]

    events = disbursements(world.app, money["account"])
    assert len(events) == 1
    assert {(s["official_id"], s["role"]) for s in events[0].signatures} == {
        (official_id(PREPARER), "preparer"), (official_id(REVIEWER), "reviewer"),
        (official_id(APPROVER), "approver")}

    # signing again is refused; the step stays once
    r = officer.post(f"/drafts/{did}/signatures", json=signature(officer, did, PREPARER,
                                                                 "preparer"))
    assert r.status_code == 200 and r.json()["state"] == "executed"  # a retry: the result
    assert len(disbursements(world.app, money["account"])) == 1

    shown = runner.invoke(cli_app, ["draft", "show", did])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["state"] == "executed"

    # who did what is in the access log, chained like every other row
    log = api.client.get("/access-log", params={"subject_id": did, "limit": 100}).json()
    kinds = [e["subject_kind"] for e in log["items"]]
    assert kinds == ["draft_submitted", "draft_signed", "draft_signed", "draft_signed",
                     "draft_executed"]
    actors = [e["actor"] for e in log["items"]]
    assert actors[0] == actors[1] == "乡财政所 李经办"
    assert actors[2].startswith("cli:") and actors[3] == actors[4] == "镇长 王审批"
    assert api.client.get("/log/verify").status_code == 200


def test_a_bad_signature_is_refused_and_named(api: Any, money: dict[str, Any]) -> None:
    officer = money["officer"]
    did = a_payment_draft(money).json()["id"]
    good = signature(officer, did, PREPARER, "preparer")
    url = f"/drafts/{did}/signatures"
    refused(officer.post(url, json={**good, "signature": signature(
        officer, did, REVIEWER, "reviewer")["signature"]}), 403, "SignatureInvalid",
        "signature")
    refused(officer.post(url, json={**good, "signature": "not base64!"}), 422, "InvalidInput",
            "signature")
    other = SigningKey.from_seed(b"someone else")
    refused(officer.post(url, json={**good, "key_id": other.key_id}), 403, "SignatureInvalid",
            "key_id")
    refused(officer.post(url, json={**good, "official_id": official_id("nobody@0")}), 403,
            "SignerNotAuthorised", "official_id")
    refused(officer.post(url, json={**good, "role": "witness"}), 422, "InvalidInput", "role")
    refused(officer.get(f"/drafts/{did}/message", params={
        "official_id": official_id(PREPARER), "role": "preparer", "key_id": other.key_id}),
        403, "SignatureInvalid", "key_id")
    assert officer.post(url, json=good).status_code == 200
    refused(officer.post(url, json=signature(officer, did, PREPARER, "reviewer")), 403,
            "SeparationOfDuties", "official_id")
    refused(officer.post(url, json=signature(officer, did, REVIEWER, "preparer")), 409,
            "RoleAlreadySigned", "role")
    refused(api.as_("reviewer", TOWNSHIP).post(url, json=signature(
        officer, did, REVIEWER, "reviewer")), 403, "RoleNotPermitted")
    assert officer.get(f"/drafts/{did}").json()["signed_roles"] == ["preparer"]


def test_a_bad_draft_is_refused_at_once_naming_the_field(api: Any, money: dict[str, Any]
                                                         ) -> None:
    officer = money["officer"]
    content = household_payment(money["household"], 100)
    post = lambda **body: officer.post("/drafts", json={  # noqa: E731
        "step": "FundAccount.Disbursed", "subject": money["account"], "content": content,
        **body})
    refused(post(step="FundAccount.Nonsense"), 422, "InvalidInput", "step")
    refused(post(content={**content, "colour": "red"}), 422, "InvalidInput", "content.colour")
    del content["document_no"]
    refused(post(), 422, "InvalidInput", "content.document_no")
    refused(post(step="Household.NoticePosted"), 403, "RoleNotPermitted", "step")
    refused(api.as_("fund_officer", VILLAGE).post("/drafts", json={
        "step": "FundAccount.Disbursed", "subject": money["account"],
        "content": household_payment(money["household"], 100)}), 403, "OutsideJurisdiction",
        "subject")
    assert officer.get("/drafts").json()["items"] == []


def test_a_refused_execution_stays_visible_with_its_refusal(api: Any, world: World,
                                                            money: dict[str, Any]) -> None:
    officer = money["officer"]
    did = a_payment_draft(money, 5_000_000).json()["id"]  # more than the account holds
    for code, role in ((PREPARER, "preparer"), (REVIEWER, "reviewer")):
        assert officer.post(f"/drafts/{did}/signatures",
                            json=signature(officer, did, code, role)).status_code == 200
    r = officer.post(f"/drafts/{did}/signatures",
                     json=signature(officer, did, APPROVER, "approver"))
    body = refused(r, 422, "InsufficientFunds")
    assert body["draft_id"] == did and body["state"] == "refused"
    shown = officer.get(f"/drafts/{did}").json()
    assert shown["state"] == "refused" and shown["result"] is None
    assert shown["refusal"]["rule"] == "InsufficientFunds"
    assert shown["refusal"]["title"] == "InsufficientFunds"
    assert shown["refusal"]["type"].endswith("/InsufficientFunds")
    assert shown["refusal"]["detail"] and shown["refusal"]["status"] == 422
    assert [d["id"] for d in officer.get("/drafts", params={"state": "refused"}
                                         ).json()["items"]] == [did]
    assert disbursements(world.app, money["account"]) == []
    kinds = [e["subject_kind"] for e in api.client.get(
        "/access-log", params={"subject_id": did}).json()["items"]]
    assert kinds[-1] == "draft_refused"
    refused(officer.post(f"/drafts/{did}/withdraw"), 409, "DraftNotOpen")


def test_an_expired_draft_refuses_signing(api: Any, money: dict[str, Any]) -> None:
    officer = money["officer"]
    did = a_payment_draft(money).json()["id"]
    queue = drafts_on(api.client.app.state)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=7, minutes=1)  # default: 7 days
    queue.clock = lambda: later
    assert officer.get(f"/drafts/{did}").json()["state"] == "expired"
    refused(officer.post(f"/drafts/{did}/signatures",
                         json=signature(officer, did, PREPARER, "preparer")), 409,
            "DraftNotOpen", "draft_id")
    assert [d["id"] for d in officer.get("/drafts", params={"state": "expired"}
                                         ).json()["items"]] == [did]
    assert officer.get("/drafts", params={"state": "open"}).json()["items"] == []


def test_the_preparer_withdraws_a_draft(api: Any, money: dict[str, Any]) -> None:
    officer = money["officer"]
    did = a_payment_draft(money).json()["id"]
    someone = api.as_("fund_officer", TOWNSHIP, "另一位")
    refused(someone.post(f"/drafts/{did}/withdraw"), 403, "NotTheDraftsPreparer", "draft_id")
    r = officer.post(f"/drafts/{did}/withdraw")
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    refused(officer.post(f"/drafts/{did}/signatures",
                         json=signature(officer, did, PREPARER, "preparer")), 409,
            "DraftNotOpen")
    kinds = [e["subject_kind"] for e in api.client.get(
        "/access-log", params={"subject_id": did}).json()["items"]]
    assert kinds == ["draft_submitted", "draft_withdrawn"]


def test_the_same_idempotency_key_does_not_make_two_drafts(api: Any,
                                                           money: dict[str, Any]) -> None:
    content = household_payment(money["household"], 100)
    body = {"step": "FundAccount.Disbursed", "subject": money["account"], "content": content}
    headers = {"Idempotency-Key": "draft-0001"}
    first = money["officer"].post("/drafts", json=body, headers=headers)
    again = money["officer"].post("/drafts", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    assert len(money["officer"].get("/drafts").json()["items"]) == 1


def test_lists_filter_by_state_and_by_the_signature_awaited(api: Any,
                                                            money: dict[str, Any]) -> None:
    officer = money["officer"]
    one, two = (a_payment_draft(money).json()["id"] for _ in range(2))
    assert officer.post(f"/drafts/{one}/signatures",
                        json=signature(officer, one, PREPARER, "preparer")).status_code == 200
    ids = lambda **q: [d["id"] for d in officer.get("/drafts", params=q).json()["items"]]  # noqa
    assert set(ids(state="open")) == {one, two}
    assert ids(waiting_for=official_id(PREPARER)) == [two]
    assert set(ids(waiting_for=official_id(REVIEWER))) == {one, two}
    assert set(ids(role="reviewer")) == {one, two} and ids(role="preparer") == [two]
    assert ids(state="executed") == []
    outside = api.as_("fund_officer", "522625100002")
    assert outside.get("/drafts").json()["items"] == []
    refused(outside.get(f"/drafts/{one}"), 403, "OutsideJurisdiction", "draft_id")
    page = officer.get("/drafts", params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_offset"] == 1


def test_a_draft_shown_is_in_the_access_log(api: Any, money: dict[str, Any]) -> None:
    officer = money["officer"]
    did = a_payment_draft(money).json()["id"]
    assert officer.get(f"/drafts/{did}", headers={"X-Request-ID": "read-draft-1"}
                       ).status_code == 200
    rows = [e for e in api.client.get("/access-log", params={"limit": 1000}).json()["items"]
            if e["request_id"] == "read-draft-1"]
    assert {(e["subject_kind"], e["subject_id"]) for e in rows} == {
        ("account", money["account"]), ("household", money["household"])}


def test_racing_signers_run_the_step_once(api: Any, world: World,
                                          money: dict[str, Any]) -> None:
    officer = money["officer"]
    did = a_payment_draft(money).json()["id"]
    for code, role in ((PREPARER, "preparer"), (REVIEWER, "reviewer")):
        officer.post(f"/drafts/{did}/signatures", json=signature(officer, did, code, role))
    last = signature(officer, did, APPROVER, "approver")
    queue: Drafts = drafts_on(api.client.app.state)
    who = Principal("t", "racer", ApiRole.FUND_OFFICER, None, None)
    results: list[Any] = []
    errors: list[BaseException] = []

    def sign() -> None:
        try:
            results.append(queue.add_signature(who, Via("POST", "test"), did, last))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=sign) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] or all(e.rule == "RoleAlreadySigned" for e in errors), errors
    assert results and all(d.state == "executed" for d in results)
    assert len(disbursements(world.app, money["account"])) == 1
    executed = [e for e in api.client.get("/access-log", params={"subject_id": did}
                                          ).json()["items"]
                if e["subject_kind"] == "draft_executed"]
    assert len(executed) == 1
    with queue.engine.begin() as conn:  # the compare-and-set itself
        assert queue._claim(conn, did) is False


def test_a_payment_batch_keeps_its_rows_and_passes_them_on_unchanged(
        api: Any, world: World, money: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    batch = pytest.importorskip("domain.batch")
    households = [str(a_registered_household(world, f"B{i}")) for i in range(2)]
    rows = [{"movement_id": str(uuid.uuid4()), "payee_id": h, "amount_fen": 10_000 * (i + 1),
             "source_row": i + 4} for i, h in enumerate(households)]
    batch_id = str(uuid.uuid4())
    checked = [batch.payment_row(r, i, "household") for i, r in enumerate(rows)]
    manifest = {"batch_id": batch_id, "effective_date": "2025-03-01", "purpose": "hh_industry",
                "document_no": "镇财支〔2025〕3号", "payee_kind": "household",
                "row_count": 2, "total_fen": 30_000,
                "rows_root": batch.rows_root(batch.PAYMENT_ROW, batch_id, checked),
                "source_file": "分户清单.xlsx", "source_sha256": "ab" * 32}
    seen: list[dict[str, Any]] = []
    run = world.app.execute
    monkeypatch.setattr(world.app, "execute", lambda c: seen.append(c) or run(c))
    officer = money["officer"]
    r = officer.post("/drafts", json={"step": "FundAccount.BatchOrdered",
                                      "subject": money["account"], "content": manifest,
                                      "rows": rows})
    assert r.status_code == 201, r.text
    did = r.json()["id"]
    assert r.json()["rows_count"] == 2
    for code, role in ((PREPARER, "preparer"), (REVIEWER, "reviewer"), (APPROVER, "approver")):
        r = officer.post(f"/drafts/{did}/signatures", json=signature(officer, did, code, role))
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "executed"
    assert len(seen) == 1 and seen[0]["rows"] == rows and seen[0]["content"] == manifest
    assert len(disbursements(world.app, money["account"])) == 2  # one payment per row

    village = api.as_("village_official", VILLAGE)
    refused(village.post("/drafts", json={"step": "Household.Applied",
                                          "content": application(world, "H9"),
                                          "rows": [{"n": 1}]}), 422, "InvalidInput", "rows")


def test_a_creation_step_gets_its_subject_from_its_code(api: Any, world: World) -> None:
    village = api.as_("village_official", VILLAGE)
    r = village.post("/drafts", json={"step": "Household.Applied",
                                      "content": application(world, "H9")})
    assert r.status_code == 201, r.text
    draft = r.json()
    assert draft["subject"] == str(Household.create_id("H9"))
    assert draft["missing_roles"] == ["preparer"]
    code = official("accountant", VILLAGE)
    r = village.post(f"/drafts/{draft['id']}/signatures",
                     json=signature(village, draft["id"], code, "preparer"))
    assert r.status_code == 201 and r.json()["state"] == "executed", r.text


def test_the_roles_a_draft_needs_are_the_step_catalogues() -> None:
    catalogue = step_catalogue()
    for step in STEPS:
        assert set(required_roles(step)) == {s["role"] for s in catalogue[step]["signers"]}, step
