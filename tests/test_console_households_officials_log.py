"""检查台: 一户一档, 干部 and 日志 screens, signed in through the real form (both stores).

The world is one county (522625) with a township and two villages; H1 in village 001 is
registered, paid twice by the township (2025-05-31, 2025-06-20), then removed on
2025-06-01 — so the June payment raises PAY_REMOVED against its three signers — and a
county inspector's case orders part of it back.  A checkpoint is signed after that.

Each screen answers 200 with the data for a person in jurisdiction, a refusal page (403,
in Chinese) for an inspector of the neighbouring county (522626) and for a village official
of the sibling village (002); the access log gets its rows; no page names another host.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyotp
import pytest
from factories import (
    COUNTY,
    OTHER_VILLAGE,
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_registered_household,
    another_county,
    head_name,
    household_payment,
    id_number,
    official,
    official_id,
    person_number,
    removal,
    run,
)
from fastapi.testclient import TestClient
from sqlalchemy import select

from access.tables import access_log
from audit import log, proofs
from audit.checkpoints import parse_vkey
from audit.merkle import hash_leaf
from domain.fund_account import FundAccount
from domain.household import Household

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
T = FundAccount.create_id(TOWNSHIP, "central")
HEAD = official_id(official("head", TOWNSHIP))
CASE = "镇纪〔2025〕9号"
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}|(?:src|href|action)\s*=\s*["']?//""",
                      re.IGNORECASE)


@dataclass
class Story:
    household: str
    june_payment: str
    events: int  # H1's own events


@dataclass
class Person:
    client: TestClient
    username: str

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, follow_redirects=False, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, follow_redirects=False, **kw)

    def csrf(self) -> str:
        page = self.get("/console/log").text
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def a_story(api: Any, world: World) -> Story:
    hid = str(a_registered_household(world, "H1"))
    a_funded_account(world, TOWNSHIP, 5_000_000)
    may = household_payment(hid, 10_000, day=D(2025, 5, 31))
    june = household_payment(hid, 25_000, day=D(2025, 6, 20), purpose="hh_housing")
    run(world, "FundAccount.Disbursed", T, may)
    run(world, "FundAccount.Disbursed", T, june)
    run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 6, 1)))
    inspector = api.as_("inspector", COUNTY, name="县纪委 王")
    r = inspector.post("/cases", json={
        "case_no": CASE, "case_type": "false_claim", "title": "坪地村清退户仍获补助",
        "region_code": VILLAGE, "effective_date": "2025-07-01", "incident_date": "2025-06-20",
        "subjects": [{"official_id": HEAD, "reason": "审批向清退户发放"}]})
    assert r.status_code == 201, r.text
    r = inspector.post(f"/cases/{quote(CASE, safe='')}/recovery-orders", json={
        "order_id": "追1", "effective_date": "2025-07-02", "reason": "清退户不应享受",
        "payments": [{"account_id": str(T), "movement_id": june["movement_id"],
                      "amount_fen": 25_000}]})
    assert r.status_code == 201, r.text
    assert api.client.post("/log/checkpoints").status_code == 201
    events = len(list(world.app.events.get(Household.create_id("H1"))))
    return Story(hid, june["movement_id"], events)


def sign_in(api: Any, username: str, role: str, region: str | None) -> Person:
    """A console account for ``role`` in ``region``, signed in through the form."""
    app = api.client.app
    where = api.zhuisu.region(region) if region else None
    made = app.state.accounts.create(username, f"{username} 测试", role, where,
                                     created_by="test", now=NOW)
    client = TestClient(app)
    form = client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    r = client.post("/console/login", follow_redirects=False, data={
        "username": username, "password": made.password, "csrf": csrf, "next": "/console/",
        "code": pyotp.TOTP(made.totp_secret).now()})
    assert r.status_code == 303, r.text
    return Person(client, username)


def page(person: Person, url: str, status: int = 200) -> str:
    r = person.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[r.text.find("<main"):][:1500])
    assert r.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.search(r.text), EXTERNAL.search(r.text).group(0)
    return r.text


def refused(person: Person, url: str, rule: str = "OutsideJurisdiction") -> str:
    text = page(person, url, 403)
    assert rule in text and ("超出您的管辖范围" in text or "无权" in text)
    return text


def reads(api: Any, username: str) -> list[tuple[str, str, str]]:
    """(route, subject kind, subject id) of the access log rows of a console account (but
    its sign-in)."""
    account = api.client.app.state.accounts.get(username)
    with api.client.app.state.access_log.engine.connect() as conn:
        rows = conn.execute(select(access_log.c.route, access_log.c.subject_kind,
                                   access_log.c.subject_id)
                            .where(access_log.c.token_id == account.principal.token_id,
                                   access_log.c.subject_kind != "sign_in")
                            .order_by(access_log.c.id)).all()
    return [tuple(r) for r in rows]


@pytest.fixture
def story(api: Any, world: World) -> Story:
    return a_story(api, world)


# 一户一档 ---------------------------------------------------------------------------------
def test_a_household_file_its_village_its_proofs_and_who_may_see_them(
        api: Any, world: World, story: Story) -> None:
    inspector = sign_in(api, "county-inspector", "inspector", COUNTY)
    hid = story.household

    index = page(inspector, "/console/households")
    assert "坪地村" in index and f"/console/households?village={VILLAGE}" in index
    village = page(inspector, f"/console/households?village={VILLAGE}")
    assert f"/console/households/{hid}" in village and head_name("H1") in village
    assert "已清退" in village
    assert f"/console/households/{hid}" in page(
        inspector, f"/console/households?village={VILLAGE}&status=removed")
    assert "没有符合条件的农户" in page(
        inspector, f"/console/households?village={VILLAGE}&status=exited")
    r = inspector.get("/console/households?code=H1")
    assert (r.status_code, r.headers["location"]) == (303, f"/console/households/{hid}")

    text = page(inspector, f"/console/households/{hid}")
    for shown in ("一户一档 · H1", head_name("H1"), "H1配偶", "申请", "民主评议", "第一次公示",
                  "乡镇审核", "县级审批", "清退", "家庭成员为财政供养人员",
                  "finance_accountant@522625100", "乡镇扶贫专干", "经办",
                  "产业扶持到户补助", "危房改造补助", "100.00", "250.00", "350.00", "2025"):
        assert shown in text, shown
    assert text.count("✓ 已验证") == story.events
    assert "验证失败" not in text
    # ID numbers: never in clear; the keyed hash only masked
    for who in ("head", "spouse"):
        number = id_number(person_number(f"H1/{who}"))
        hashed = world.app.hash_id(number)
        assert number not in text and hashed not in text
        assert f"{hashed[:6]}********{hashed[-4:]}" in text

    positions = [int(p) for p in re.findall(rf"/console/households/{hid}/proofs/(\d+)\.json",
                                            text)]
    assert len(positions) == story.events
    r = inspector.get(f"/console/households/{hid}/proofs/{positions[-1]}.json")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    audit = api.client.app.state.audit
    verified = proofs.verify_inclusion_bundle(r.text, log.public_key(audit))
    assert verified.record.position == positions[-1]
    assert r.json() == log.prove_inclusion(audit, position=positions[-1])  # as zhuisu prove
    receipt = log.prove_inclusion(audit, originator_id=str(T), version=2)  # not H1's event
    receipt = proofs.verify_inclusion_bundle(receipt, log.public_key(audit)).record.position
    assert "NotFound" in page(inspector, f"/console/households/{hid}/proofs/{receipt}.json",
                              404)

    seen = reads(api, "county-inspector")
    assert ("/console/households", "household", hid) in seen
    assert ("/console/households/{household_id}", "household", hid) in seen
    assert ("/console/households/{household_id}/proofs/{position:int}.json", "household",
            hid) in seen

    # outside: the neighbouring county's inspector, the sibling village's official
    another_county(world)
    for username, role, region in (("b-inspector", "inspector", "522626"),
                                   ("other-village", "village_official", OTHER_VILLAGE)):
        outsider = sign_in(api, username, role, region)
        refused(outsider, f"/console/households/{hid}")
        refused(outsider, f"/console/households/{hid}/proofs/{positions[0]}.json")
        refused(outsider, "/console/households?code=H1")
        refused(outsider, f"/console/households?village={VILLAGE}")
        assert reads(api, username) == []  # nothing shown, nothing recorded
    assert f"/console/households/{hid}" not in page(outsider, "/console/households")


def test_the_household_list_pages_and_refuses_what_is_not_a_village(
        api: Any, world: World) -> None:
    for i in range(3):
        a_registered_household(world, f"P{i}")
    reviewer = sign_in(api, "township-reviewer", "reviewer", TOWNSHIP)
    text = page(reviewer, f"/console/households?village={VILLAGE}")
    assert all(f"P{i}" in text for i in range(3)) and "在册 3" in text
    assert "InvalidInput" in page(reviewer, f"/console/households?village={TOWNSHIP}", 422)
    assert "NotFound" in page(reviewer, "/console/households?code=NOPE", 404)
    assert "InvalidInput" in page(reviewer, "/console/households/not-a-uuid", 422)
    assert "InvalidInput" in page(reviewer, f"/console/households?village={VILLAGE}"
                                  "&status=flying", 422)
    r = TestClient(api.client.app).get("/console/households", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


# 干部 -----------------------------------------------------------------------------------
def test_an_official_file_signed_liability_recovery_and_flags(
        api: Any, world: World, story: Story) -> None:
    inspector = sign_in(api, "county-inspector", "inspector", COUNTY)
    listing = page(inspector, "/console/officials")
    assert f"/console/officials/{HEAD}" in listing and "乡镇长" in listing
    assert f"/console/officials/{HEAD}" in page(inspector, f"/console/officials?region={TOWNSHIP}")
    assert f"/console/officials/{HEAD}" not in page(
        inspector, f"/console/officials?region={VILLAGE}")

    text = page(inspector, f"/console/officials/{HEAD}")
    for shown in ("head@522625100", "乡镇长", "羊场镇 522625100", "2020-01-01", "在任",
                  "发放（到户、到项目）", "审核", "向已清退户发放", CASE, "直接当事人",
                  "250.00", "H1"):
        assert shown in text, shown
    assert re.search(r"尚未追回（元）", text)
    # the order charges the June payment to its three signers: 250.00 元 = 83.33 + 83.33 + 83.34
    assert "83.33" in text or "83.34" in text
    assert "向后被清退农户的发放中尚未追回" in text

    narrowed = page(inspector, f"/console/officials/{HEAD}?from=2025-06-10&to=2025-06-30")
    assert "2025-06-10 至 2025-06-30" in narrowed
    assert "InvalidInput" in page(inspector, f"/console/officials/{HEAD}?from=2025-07-01"
                                  "&to=2025-06-01", 422)

    seen = reads(api, "county-inspector")
    assert ("/console/officials", "official", HEAD) in seen
    kinds = {kind for route, kind, _ in seen if route == "/console/officials/{official_id}"}
    assert {"official", "flag", "case", "household"} <= kinds
    assert ("/console/officials/{official_id}", "household", story.household) in seen

    another_county(world)
    b = sign_in(api, "b-inspector", "inspector", "522626")
    refused(b, f"/console/officials/{HEAD}")
    refused(b, f"/console/officials?region={COUNTY}")
    assert f"/console/officials/{HEAD}" not in page(b, "/console/officials")
    sibling = sign_in(api, "other-village", "village_official", OTHER_VILLAGE)
    refused(sibling, f"/console/officials/{HEAD}")
    assert reads(api, "b-inspector") == [] and not any(
        i == HEAD for _, _, i in reads(api, "other-village"))


# 日志 ------------------------------------------------------------------------------------
def test_the_log_page_verification_and_downloads(api: Any, world: World, story: Story) -> None:
    audit = api.client.app.state.audit
    a_registered_household(world, "H2")  # a second checkpoint over more events
    assert api.client.post("/log/checkpoints").status_code == 201
    inspector = sign_in(api, "county-inspector", "inspector", COUNTY)

    text = page(inspector, "/console/log")
    vkey = log.public_key(audit)
    digest = hashlib.sha256(parse_vkey(vkey).public_key).hexdigest()
    assert vkey in text and " ".join(digest[i:i + 4] for i in range(0, 64, 4)) in text
    assert text.index("#2") < text.index("#1")  # newest first
    assert "尚未在检查台运行验证" in text

    # the verification: a POST with the session's CSRF token, kept and shown
    assert "CsrfRefused" in inspector.post("/console/log/verify").text
    r = inspector.post("/console/log/verify", data={"csrf": inspector.csrf()})
    assert r.status_code == 303
    text = page(inspector, "/console/log")
    assert "✓ 验证通过" in text and "county-inspector 测试" in text
    r = inspector.post("/console/log/verify", data={"csrf": inspector.csrf()},
                       headers={"HX-Request": "true"})
    assert r.status_code == 200 and "✓ 验证通过" in r.text and "<html" not in r.text

    # downloads
    r = inspector.get("/console/log/checkpoint.txt?id=1")
    assert r.status_code == 200 and r.text == log.get_checkpoint(audit, 1).note
    assert inspector.get("/console/log/checkpoint.txt").text == log.get_checkpoint(audit).note
    assert "# checkpoint 2" in inspector.get("/console/log/export.txt").text
    r = inspector.get("/console/log/proofs/consistency.json?old=1")
    old, new = proofs.verify_consistency_bundle(r.text, vkey)
    assert (old.size, new.size) == (log.get_checkpoint(audit, 1).checkpoint.size,
                                    log.get_checkpoint(audit).checkpoint.size)
    position = log.prove_inclusion(audit, originator_id=story.household, version=1)
    position = proofs.verify_inclusion_bundle(position, vkey).record.position
    r = inspector.get(f"/console/log/proofs/inclusion.json?position={position}&checkpoint=1")
    assert proofs.verify_inclusion_bundle(r.text, vkey).record.position == position
    assert ("/console/log/proofs/inclusion.json", "household",
            story.household) in reads(api, "county-inspector")
    assert "InvalidInput" in page(inspector, "/console/log/proofs/inclusion.json?position=x",
                                  422)
    assert "NotInLog" in page(inspector, "/console/log/checkpoint.txt?id=99", 404)

    # outside the jurisdiction: the same proof without the record, nothing recorded
    another_county(world)
    b = sign_in(api, "b-inspector", "inspector", "522626")
    assert "#2" in page(b, "/console/log")
    r = b.get(f"/console/log/proofs/inclusion.json?position={position}")
    withheld = r.json()
    assert withheld["type"] == "zhuisu-leaf-inclusion-proof/v1" and "record" not in withheld
    leaf = base64.b64decode(json.loads(inspector.get(
        f"/console/log/proofs/inclusion.json?position={position}").text)["record"])
    assert withheld["leaf_hash"] == base64.b64encode(hash_leaf(leaf)).decode()
    assert reads(api, "b-inspector") == []


def test_a_changed_event_fails_the_verification_and_every_proof_while_alarmed(
        api: Any, world: World, story: Story) -> None:
    audit = api.client.app.state.audit
    other = str(a_registered_household(world, "H2"))
    assert api.client.post("/log/checkpoints").status_code == 201
    inspector = sign_in(api, "county-inspector", "inspector", COUNTY)
    bundle = log.prove_inclusion(audit, originator_id=story.household, version=1)
    position = proofs.verify_inclusion_bundle(bundle, log.public_key(audit)).record.position
    sqlite = audit.dialect == "sqlite"
    table = "stored_events" if sqlite else f'"{audit.schema}"."zhuisu_events"'
    where = "rowid" if sqlite else "notification_id"
    mark = "?" if sqlite else "%s"
    with audit.engine.begin() as conn:  # someone with database access edits H1's application
        state = conn.exec_driver_sql(f"SELECT state FROM {table} WHERE {where} = {mark}",
                                     (position,)).scalar_one()
        conn.exec_driver_sql(f"UPDATE {table} SET state = {mark} WHERE {where} = {mark}",
                             (bytes(state) + b" ", position))

    r = inspector.post("/console/log/verify", data={"csrf": inspector.csrf()},
                       headers={"HX-Request": "true"})
    assert "✗ 验证发现问题" in r.text and f"首个不一致的日志位置 {position}" in r.text
    # reading the changed household raises the integrity alarm: its file is refused …
    assert "IntegrityAlarm" in page(inspector, f"/console/households/{story.household}", 503)
    # … and while the alarm stands no proof is served: every mark says why
    text = page(inspector, f"/console/households/{other}")
    assert "✓ 已验证" not in text and "✗ 验证失败" in text and "integrity alarm" in text
    assert "完整性告警" in page(inspector, "/console/log")
