"""一户一档: a household's file — search by village or household code, a village's households
with their status, and one household's whole record: its timeline (申请 → 评议 → 公示 → 审批 →
帮扶 → 收入核查 → 脱贫 / 清退 / 返贫) with who signed each step in which role and position,
the money it received by policy and year, its members (ID numbers only as masked keyed
hashes), and for every event an inclusion proof in the latest signed checkpoint, built and
verified here with the log's public key (and downloadable in the format ``zhuisu
verify-proof`` checks).

The same data as the API: ``GET /households?village=`` (``Directory.households_in``, the
aggregates), ``GET /households/{id}`` (``projections.aggregates.household_view``),
``…/chain`` (``projections.chains.household_chain``), ``…/money``
(``projections.chains.household_money``) and ``GET /log/proofs/inclusion``
(``audit.log.prove_inclusion``); every household shown is recorded in the access log.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterable
from itertools import islice
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from access.reads import Read
from access.roles import Action
from audit import log as audit_log
from audit import proofs
from audit.errors import AuditError, NotInLog
from audit.records import decode_record
from console.screens.overview import home_region
from console.web import (
    ConsoleRoute,
    Person,
    covers,
    may,
    now,
    page,
    read_models,
    record,
    redirect,
    zhuisu,
)
from domain.errors import InvalidInput, NotFound
from projections.queries import village_view
from domain.household import Household, Status
from domain.official import Official
from domain.region import RegionLevel
from exchange import labels
from projections import chains
from projections.aggregates import household_view

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
MAX_EVENTS = 1000

# every status of the procedure (web.STATUS_ZH names the register's main ones)
HOUSEHOLD_STATUS_ZH = labels.HOUSEHOLD_STATUS_ZH
STEP_ZH = {
    **labels.STEP_ZH,
    "Project.Approved": "项目审批", "Project.BeneficiaryAdded": "增加受益户",
    "Project.AcceptedOnCompletion": "项目竣工验收",
    "FundAccount.Received": "收到资金", "FundAccount.Allocated": "下达 / 拨付下级",
    "FundAccount.Disbursed": "发放（到户、到项目）", "FundAccount.Recovered": "追回",
    "FundAccount.Reversed": "冲正",
}
NOTICE_ZH = {"first": "第一次公示（村）", "second": "第二次公示", "exit": "退出公示"}
# the stage a step belongs to, for the timeline's marks
STAGE = {
    "Household.Applied": "apply", "Household.AppraisedByVillage": "appraise",
    "Household.VerifiedByVillage": "appraise", "Household.NoticePosted": "notice",
    "Household.ObjectionRaised": "notice", "Household.ObjectionResolved": "notice",
    "Household.ReviewedByTownship": "approve", "Household.ApprovedByCounty": "approve",
    "Household.HelperAssigned": "help", "Household.AnnualReviewRecorded": "income",
    "Household.ExitProposed": "exit", "Household.ExitAppraised": "exit",
    "Household.ExitConfirmedByHousehold": "exit", "Household.ExitVerifiedByTownship": "exit",
    "Household.ExitApprovedByCounty": "exit", "Household.RemovedFromRegister": "removed",
    "Household.Relapsed": "relapsed",
}
RELATION_ZH = labels.RELATION_ZH
CAUSE_ZH = labels.CAUSE_ZH
CHECK_ZH = {"food": "不愁吃", "clothing": "不愁穿", "compulsory_education": "义务教育有保障",
            "basic_medical": "基本医疗有保障", "safe_housing": "住房安全有保障",
            "safe_drinking_water": "饮水安全有保障"}
METHOD_ZH = {"signature": "签字", "fingerprint": "按手印"}
LABELS = {"HOUSEHOLD_STATUS_ZH": HOUSEHOLD_STATUS_ZH, "STEP_ZH": STEP_ZH, "NOTICE_ZH": NOTICE_ZH,
          "STAGE": STAGE, "RELATION_ZH": RELATION_ZH, "CAUSE_ZH": CAUSE_ZH,
          "CHECK_ZH": CHECK_ZH, "METHOD_ZH": METHOD_ZH}

Text = Annotated[str | None, Query(max_length=64)]


def directory(request: Request) -> Any:
    """The index of which aggregates exist where, caught up with the log (as the API)."""
    found = request.app.state.directory
    found.catch_up(zhuisu(request))
    return found


def region_label(request: Request, code: str | None) -> str:
    """'上坪村 990121101201' (the code alone if the store has no such region)."""
    if not code:
        return "—"
    try:
        return f"{zhuisu(request).region(code).name} {code}"
    except NotFound:
        return code


def region_labels(request: Request, codes: Iterable[str | None]) -> dict[str, str]:
    """code → 'name code' for every region code given (each looked up once)."""
    return {c: region_label(request, c) for c in dict.fromkeys(c for c in codes if c)}


def household_reads(households: Iterable[Household]) -> list[Read]:
    return [Read("household", str(h.id), dict(h.region_path)) for h in households]


# the search and a village's households ------------------------------------------------------
@router.get("/households", response_class=HTMLResponse)
def households_page(request: Request, person: Person, code: Text = None, village: Text = None,
                    region: Text = None, status: Text = None,
                    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    may(person, Action.READ)
    app = zhuisu(request)
    code, village, region, status = (v.strip() if v else None
                                     for v in (code, village, region, status))
    if code:  # a household by its code: its file (the file checks the jurisdiction)
        household = app.load(Household, Household.create_id(code), "code")
        covers(person, household.region_path, f"农户 {code}", "code")
        return redirect(f"/console/households/{household.id}")
    found = home_region(request, person, village or region)
    if found.level is not RegionLevel.VILLAGE:
        if village:
            raise InvalidInput(f"{village} 是{found.level.value}级地区，不是村", field="village")
        return page(request, "households.html", person, region=found, village=None,
                    tree=_region_tree(request, found), **LABELS)
    wanted = None
    if status:
        try:
            wanted = Status(status)
        except ValueError as exc:
            raise InvalidInput("未知的状态", field="status") from exc
    # the register read model (what GET /villages/{code} shows), not every aggregate loaded
    everyone = village_view(read_models(request), found.code)["register"]
    counts: dict[str, int] = defaultdict(int)
    for h in everyone:
        counts[h["status"]] += 1
    chosen = (h for h in everyone if wanted is None or h["status"] == wanted.value)
    shown = list(islice(chosen, offset, offset + PAGE + 1))
    more = len(shown) > PAGE
    shown = shown[:PAGE]
    path = dict(found.path)
    record(request, person, [Read("household", h["household_id"], path) for h in shown])
    args = {k: v for k, v in {"village": found.code, "status": status}.items() if v}
    return page(request, "households.html", person, region=found, village=found,
                households=[_row(h) for h in shown], counts=dict(counts), total=len(everyone),
                status=status, offset=offset, args=args,
                next_offset=offset + PAGE if more else None,
                prev_offset=max(0, offset - PAGE) if offset else None,
                parents=_parents(request, found), **LABELS)


def _row(h: dict[str, Any]) -> dict[str, Any]:
    """A register row as the list shows it; ``since``: the last change the register dates."""
    dated = [d for d in (h.get("registered_on"), h.get("exited_on"), h.get("removed_on")) if d]
    return {"id": h["household_id"], "code": h["code"], "head_name": h["head_name"],
            "members": h["members_count"], "main_cause": h["main_cause"],
            "status": h["status"], "since": max(dated) if dated else None,
            "relapses": h["relapse_count"]}


def _parents(request: Request, region: Any) -> list[tuple[str, str]]:
    """(level, 'name code') of the region's path above it, for the heading."""
    return [(level, region_label(request, code)) for level, code in region.path.items()
            if code != region.code and level in ("county", "township")]


def _region_tree(request: Request, region: Any) -> list[dict[str, Any]]:
    """The regions to pick a village from: a county's townships with their villages, a
    township's villages, or (above a county) the child regions to go down into."""
    app, index = zhuisu(request), directory(request)

    def named(code: str) -> dict[str, Any]:
        child = app.region(code)
        return {"code": code, "name": child.name, "level": child.level.value}

    children = [named(c) for c in sorted(index.children_of(region.code))]
    if region.level is RegionLevel.TOWNSHIP:
        return [{**named(region.code), "villages": children}]
    if region.level is RegionLevel.COUNTY:
        return [{**t, "villages": [named(v) for v in sorted(index.children_of(t["code"]))]}
                for t in children]
    return [{**c, "villages": None} for c in children]


# one household's file ------------------------------------------------------------------------
def household_for(request: Request, person: Person, household_id: str) -> Household:
    """The household, if the person may see it (its read is recorded by the caller)."""
    try:
        hid = UUID(household_id)
    except ValueError as exc:
        raise InvalidInput("户标识应为 UUID", field="household_id") from exc
    household = zhuisu(request).load(Household, hid, "household_id")
    covers(person, household.region_path, f"农户 {household.code}", "household_id")
    return household


@router.get("/households/{household_id}", response_class=HTMLResponse)
def household_page(request: Request, person: Person, household_id: str) -> HTMLResponse:
    may(person, Action.READ)
    household = household_for(request, person, household_id)
    app, db = zhuisu(request), read_models(request)
    view = household_view(app, household, 0, MAX_EVENTS)
    chain = chains.household_chain(db, str(household.id))
    money = chains.household_money(db, str(household.id))
    marks = inclusion_marks(request, household.id, [e["position"] for e in view["events"]])
    by_version = {st["version"]: st for st in chain["steps"]}
    timeline = [{**e, "chain": by_version.get(e["position"]), "proof": marks.get(e["position"])}
                for e in view["events"]]
    reads = household_reads([household])
    helper = _helper(request, person, household.helper_official_id, reads)
    signers = [s for st in chain["steps"] for s in st["signatures"]]
    signers += [s for p in money["payments"] for s in p.get("signatures") or []]
    regions = region_labels(request, [s.get("position_region") for s in signers])
    record(request, person, reads)
    return page(request, "household.html", person, household=household, view=view,
                regions=regions, printed=now(),
                timeline=timeline, money=money, by_policy=_by_policy(money["payments"]),
                checkpoint=marks.get("checkpoint"), helper=helper,
                village=region_label(request, household.village_code),
                township=region_label(request, household.region_path.get("township")),
                county=region_label(request, household.region_path.get("county")), **LABELS)


def _helper(request: Request, person: Person, official_id: str | None,
            reads: list[Read]) -> dict[str, Any] | None:
    """The helper official (帮扶责任人): name and link when in the person's jurisdiction."""
    if not official_id:
        return None
    app = zhuisu(request)
    try:
        official = app.load(Official, official_id, "helper_official_id")
        path = dict(app.region(official.region_code).path)
    except (NotFound, InvalidInput):
        return {"id": official_id, "name": None}
    if not person.account.principal.covers(path):
        return {"id": official_id, "name": None}
    reads.append(Read("official", str(official.id), path))
    return {"id": str(official.id), "name": official.name, "code": official.code}


def _by_policy(payments: list[dict]) -> list[dict[str, Any]]:
    """Money received per (year, purpose): count, paid, returned, net — newest year first."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for p in payments:
        year = str(p.get("effective_date") or "")[:4]
        g = groups.setdefault((year, p.get("purpose") or ""), {
            "year": year, "purpose": p.get("purpose") or "", "count": 0, "amount_fen": 0,
            "returned_fen": 0, "net_fen": 0})
        g["count"] += 1
        g["amount_fen"] += p.get("amount_fen") or 0
        g["returned_fen"] += p.get("returned_fen") or 0
        g["net_fen"] += p.get("net_fen") or 0
    return sorted(groups.values(), key=lambda g: (-int(g["year"] or 0), g["purpose"]))


def inclusion_marks(request: Request, household_id: UUID,
                    versions: list[int]) -> dict[Any, Any]:
    """version → the proof of that event's inclusion in the latest signed checkpoint, built
    from the store and verified here with the log's public key: ``ok`` True (verified,
    with position and leaf), None (not yet covered by a checkpoint) or False (the failure).
    Key ``"checkpoint"``: the checkpoint all proofs are against (None if none is signed)."""
    store = request.app.state.audit
    try:
        latest = audit_log.get_checkpoint(store)
    except NotInLog:
        return {"checkpoint": None, **{v: {"ok": None, "text": "尚无已签署的检查点"}
                                       for v in versions}}
    try:
        vkey = audit_log.public_key(store)
    except AuditError as exc:
        return {"checkpoint": None, **{v: {"ok": False, "text": f"无法读取日志公钥：{exc.message}"}
                                       for v in versions}}
    checkpoint = latest.checkpoint
    out: dict[Any, Any] = {"checkpoint": {"id": latest.id, "size": checkpoint.size,
                                          "time": checkpoint.time}}
    for version in versions:
        out[version] = _prove(store, latest.id, vkey, household_id, version)
    return out


def _prove(store: Any, checkpoint_id: int, vkey: str, household_id: UUID,
           version: int) -> dict[str, Any]:
    try:
        bundle = audit_log.prove_inclusion(store, originator_id=str(household_id),
                                           version=version, checkpoint_id=checkpoint_id)
        verified = proofs.verify_inclusion_bundle(bundle, [vkey])
    except NotInLog:
        return {"ok": None, "text": "尚未纳入最新检查点（待下一次签署）"}
    except (AuditError, ValueError) as exc:  # ProofError is a ValueError
        return {"ok": False, "text": getattr(exc, "message", None) or str(exc)}
    rec = verified.record
    if _originator(rec) != household_id or rec.originator_version != version:
        return {"ok": False, "text": f"证明中的记录不是本户第 {version} 个事件"}
    return {"ok": True, "position": rec.position, "leaf": verified.leaf_index,
            "checkpoint": checkpoint_id, "size": verified.checkpoint.size}


def _originator(rec: Any) -> UUID | None:
    """The aggregate id of a stored record (the store keeps it as text, dashed or not)."""
    try:
        return UUID(rec.originator_id.decode())
    except ValueError:
        return None


@router.get("/households/{household_id}/proofs/{position:int}.json")
def household_proof(request: Request, person: Person, household_id: str,
                    position: int) -> Response:
    """The inclusion proof bundle of one of the household's events in the latest checkpoint,
    as ``zhuisu prove --position N`` writes it (``zhuisu verify-proof BUNDLE --key VKEY``)."""
    may(person, Action.READ)
    household = household_for(request, person, household_id)
    if not 0 < position <= 2**62:
        raise InvalidInput("日志位置应为正整数", field="position")
    bundle = audit_log.prove_inclusion(request.app.state.audit, position=position)
    rec = decode_record(base64.b64decode(bundle["record"]))
    if _originator(rec) != household.id:
        raise NotFound(f"日志位置 {position} 的事件不属于农户 {household.code}",
                       field="position")
    record(request, person, household_reads([household]))
    name = f"inclusion-{household.code}-{position}.json"
    return Response(json.dumps(bundle, ensure_ascii=False, indent=2) + "\n",
                    media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
