"""Issue 14 point 1: the signing queue (签字队列) with the browser's signature, on both stores.

Three officials sign one draft from three separate sessions: the preparer over HTTP with a
bearer token, the reviewer from the CLI on the store, the approver in the console with
WebCrypto Ed25519 (``sign.js``) in Debian's Chromium — and no request the browser makes
carries the private key.  The draft runs once, when the third signature arrives, and the
event carries all three.  A bad key is refused before anything is posted, a refused
execution stays visible with its refusal, an expired draft offers no signing, a POST
without the CSRF token is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import (
    TOWNSHIP,
    a_county_world,
    a_funded_account,
    a_registered_household,
    household_payment,
    key_for,
    official,
    official_id,
)
from typer.testing import CliRunner

from access.drafts import drafts_on
from access.roles import ApiRole, Principal
from console_support import Live, browser, free_port, new_page
from domain.fund_account import FundAccount
from domain.signing import SigningKey, b64

__all__ = ["browser"]  # fixture

PREPARER = official("finance_accountant", TOWNSHIP)
REVIEWER = official("head", TOWNSHIP)
APPROVER = official("party_secretary", TOWNSHIP)
runner = CliRunner()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Live]:
    """The county world (officials with known keys), a funded township account and a
    registered household, served by uvicorn; a fund officer's console account and token."""
    import uvicorn

    from api.http import create_app
    from conftest import Store

    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    store = Store(request.param, tmp_path_factory.mktemp(f"drafts-{request.param}"), server)
    try:
        app = store.new_app()
        world = a_county_world(app)
        account = a_funded_account(world, TOWNSHIP, 1_000_000)
        household = a_registered_household(world, "H1")
        api = create_app(zhuisu=app, bootstrap_admin=False)
        uv = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=free_port(),
                                           log_config=None, access_log=False, lifespan="on"))
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not uv.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        live = Live(f"http://127.0.0.1:{uv.config.port}", app, api)
        now = dt.datetime.now(dt.UTC)
        new = api.state.accounts.create("t-fund", "乡财政 王审批", "fund_officer",
                                        app.region(TOWNSHIP, "r"), created_by="test", now=now)
        live.people["fund_officer"] = (new.account.username, new.password, new.totp_secret)
        token, _ = api.state.tokens.create(name="乡财政所 李经办", role=ApiRole.FUND_OFFICER,
                                           region=app.region(TOWNSHIP, "r"),
                                           created_by="test", now=now)
        live.states["token"] = token
        live.states["world"] = (world, str(account), str(household))
        try:
            yield live
        finally:
            uv.should_exit = True
            thread.join(timeout=15)
    finally:
        store.close()


def http(live: Live) -> httpx.Client:
    return httpx.Client(base_url=live.base, timeout=30,
                        headers={"Authorization": f"Bearer {live.states['token']}"})


def a_draft(live: Live, amount_fen: int = 100_000) -> str:
    _, account, household = live.states["world"]
    with http(live) as client:
        r = client.post("/drafts", json={"step": "FundAccount.Disbursed", "subject": account,
                                         "content": household_payment(household, amount_fen)})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def http_signature(live: Live, draft_id: str, code: str, role: str) -> httpx.Response:
    """A signer over HTTP: fetch the message, sign it here, post only the signature."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = key_for(code)
    with http(live) as client:
        m = client.get(f"/drafts/{draft_id}/message", params={
            "official_id": official_id(code), "role": role, "key_id": key.key_id})
        assert m.status_code == 200, m.text
        private = Ed25519PrivateKey.from_private_bytes(key.private_bytes())
        return client.post(f"/drafts/{draft_id}/signatures", json={
            "official_id": official_id(code), "role": role, "key_id": key.key_id,
            "signature": b64(private.sign(base64.b64decode(m.json()["message_base64"])))})


def key_file(directory: Path, key: SigningKey, name: str) -> Path:
    path = directory / f"{name}.key"
    path.write_text(json.dumps({"algorithm": "Ed25519", "key_id": key.key_id,
                                "public_key": b64(key.public_bytes),
                                "private_key": b64(key.private_bytes())}, indent=2))
    path.chmod(0o600)
    return path


def disbursed(live: Live) -> list[Any]:
    return [e for e in live.app.stored_events(FundAccount.create_id(TOWNSHIP, "central"))
            if type(e).__qualname__.endswith("Disbursed")]


def state_of(page: Any) -> str:
    return page.get_attribute("#draft-state", "data-state")


def access_kinds(live: Live, draft_id: str) -> list[str]:
    admin = Principal("test", "test admin", ApiRole.ADMIN, None, None)
    return [e["subject_kind"] for e in live.api.state.access_log.page(
        admin, subject_id=draft_id, limit=100)]


@pytest.mark.usefixtures("restore_logging")
def test_three_officials_sign_from_http_the_cli_and_the_browser(
        live: Live, browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = len(disbursed(live))
    did = a_draft(live)
    # 1. 经办 over HTTP
    assert http_signature(live, did, PREPARER, "preparer").status_code == 200
    # 2. 审核 from the CLI on the store
    from cli import app as cli_app

    monkeypatch.setenv("ZHUISU_DATABASE_URL", live.app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(live.app.pepper_file))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")
    signed = runner.invoke(cli_app, ["sign", "--draft", did, "--key",
                                     str(key_file(tmp_path, key_for(REVIEWER), "reviewer")),
                                     "--official", official_id(REVIEWER), "--role", "reviewer"])
    assert signed.exit_code == 0, signed.output
    assert len(disbursed(live)) == before  # two of three: nothing runs yet

    # 3. 审批 in the browser: the key file is read and used there, only the signature posted
    approver_key = key_for(APPROVER)
    secret = b64(approver_key.private_bytes())
    page, watch = new_page(browser, live, "fund_officer")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(f"{r.method} {r.url}\n{r.post_data or ''}"))
    page.goto(live.base + "/console/drafts")
    assert did in page.inner_html("main")  # 待签
    page.goto(live.base + f"/console/drafts/{did}")
    assert state_of(page) == "open"
    assert "审批" in page.inner_text("#missing-roles")
    assert "金额（元）" in page.inner_text("main") and "1,000.00" in page.inner_text("main")
    page.set_input_files("#key-file", str(key_file(tmp_path, approver_key, "approver")))
    page.fill("#official", APPROVER)  # the code; the server names the official's id
    page.select_option("#role", "approver")
    with page.expect_navigation():
        page.click("#sign-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert state_of(page) == "executed", page.inner_text("main")
    assert "日志位置" in page.inner_text("#draft-result")

    events = disbursed(live)
    assert len(events) == before + 1  # once
    assert {(s["official_id"], s["role"]) for s in events[-1].signatures} == {
        (official_id(PREPARER), "preparer"), (official_id(REVIEWER), "reviewer"),
        (official_id(APPROVER), "approver")}
    posts = [s for s in sent if s.startswith("POST ")]
    assert len(posts) == 1 and "signature=" in posts[0] and "csrf=" in posts[0]
    raw = approver_key.private_bytes()
    for request in sent:  # no request carries the private key, in any encoding
        assert secret not in request and raw.hex() not in request
        assert secret.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D") not in request
    assert watch.outside == [] and watch.errors == []
    assert access_kinds(live, did) == ["draft_submitted", "draft_signed", "draft_signed",
                                       "draft_signed", "draft_executed"]


def test_a_key_that_is_not_the_officials_is_refused_before_anything_is_posted(
        live: Live, browser: Any, tmp_path: Path) -> None:
    did = a_draft(live)
    page, _ = new_page(browser, live, "fund_officer")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.method))
    page.goto(live.base + f"/console/drafts/{did}")
    page.set_input_files("#key-file", str(key_file(tmp_path, SigningKey.from_seed(b"x"), "x")))
    page.fill("#official", PREPARER)
    page.select_option("#role", "preparer")
    page.click("#sign-form button[type=submit]")
    page.wait_for_function("document.getElementById('sign-status').textContent.includes('失败')")
    assert "SignatureInvalid" in page.inner_text("#sign-status")
    assert "POST" not in sent
    assert state_of(page) == "open"


def test_a_signature_that_does_not_verify_is_refused_and_named(live: Live, browser: Any) -> None:
    did = a_draft(live)
    page, _ = new_page(browser, live, "fund_officer")
    page.goto(live.base + f"/console/drafts/{did}")
    csrf = page.get_attribute("#sign-form input[name=csrf]", "value")
    key = key_for(PREPARER)
    r = page.request.post(live.base + f"/console/drafts/{did}/signatures", form={
        "csrf": csrf, "official_id": PREPARER, "role": "preparer", "key_id": key.key_id,
        "signature": b64(b"\x00" * 64)})
    assert r.status == 403
    assert "签名" in r.text() and "SignatureInvalid" in r.text()
    r = page.request.post(live.base + f"/console/drafts/{did}/signatures", form={
        "official_id": PREPARER, "role": "preparer", "key_id": key.key_id,
        "signature": b64(b"\x00" * 64)})
    assert r.status == 403 and "CsrfRefused" in r.text()
    assert access_kinds(live, did) == ["draft_submitted"]


def test_a_refused_execution_and_an_expired_draft_are_shown(live: Live, browser: Any) -> None:
    did = a_draft(live, 50_000_000)  # more than the account holds
    for code, role in ((PREPARER, "preparer"), (REVIEWER, "reviewer")):
        assert http_signature(live, did, code, role).status_code == 200
    r = http_signature(live, did, APPROVER, "approver")
    assert r.status_code == 422 and r.json()["rule"] == "InsufficientFunds"
    page, watch = new_page(browser, live, "fund_officer")
    page.goto(live.base + f"/console/drafts/{did}")
    assert state_of(page) == "refused"
    refusal = page.inner_text("#draft-refusal")
    assert "执行被拒绝" in refusal and "InsufficientFunds" in refusal
    assert page.locator("#sign-form").count() == 0
    page.goto(live.base + "/console/drafts?state=refused")
    assert did in page.inner_html("main")

    expiring = a_draft(live)
    queue = drafts_on(live.api.state)
    real = queue.clock
    queue.clock = lambda: real() + dt.timedelta(days=8)
    try:
        page.goto(live.base + f"/console/drafts/{expiring}")
        assert state_of(page) == "expired"
        assert page.locator("#sign-form").count() == 0
        assert http_signature(live, expiring, PREPARER, "preparer").status_code == 409
    finally:
        queue.clock = real
    assert watch.errors == []
