"""签字队列 (the signing queue): drafts waiting for signatures, one draft's content and
signatures, and the 签字 form.

The official loads their key file (``zhuisu keygen``'s JSON) in the browser; ``sign.js``
imports it with WebCrypto Ed25519, fetches the exact bytes to sign
(``/console/drafts/{id}/message``, the same ``access.drafts.Drafts.message`` as ``GET
/drafts/{id}/message``), signs them there and posts only the signature with the
session's CSRF token: the private key is never sent.  The rules are ``access.drafts``'s;
a signer needs a role that submits steps and a jurisdiction covering the draft (accounts
are not bound to officials: the signature by the official's registered key is the proof).
Each draft's subject shown goes to the access log, as the API records it.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from access.drafts import STATES, Draft, Drafts, Via, drafts_on
from access.errors import Refusal, refusal_problem
from access.reads import Read
from access.roles import Action
from console.web import ConsoleRoute, Person, check_csrf, covers, may, page, record, redirect
from domain.errors import DomainError, InvalidInput
from domain.official import Official
from domain.signing import b64
from exchange.labels import CAUSE_ZH, PURPOSE_ZH, RELATION_ZH

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

STATE_ZH = {"open": "待签", "executing": "执行中", "executed": "已执行", "refused": "被拒绝",
            "withdrawn": "已撤回", "expired": "已过期"}
FIELD_ZH = {
    "movement_id": "流水号", "amount_fen": "金额（元）", "effective_date": "业务日期",
    "purpose": "用途", "document_no": "文号", "payee_kind": "收款方类型", "payee_id": "收款方",
    "project_id": "项目", "to_account_id": "拨入账户", "source": "资金来源",
    "of_movement_id": "原流水号", "reason": "原因", "household_code": "户编号",
    "village_code": "村代码", "head_name": "户主姓名", "main_cause": "主要致贫原因",
    "secondary_causes": "其他致贫原因", "members": "家庭成员",
    "income_per_capita_fen": "人均纯收入（元）", "bank_account_hash": "银行账号（摘要）",
    "project_code": "项目编号", "name": "名称", "region_code": "地区代码",
    "purpose_code": "用途", "budget_fen": "预算（元）",
    "beneficiary_household_ids": "受益户", "checks": "核查项", "helper_official_id": "帮扶责任人",
    "year": "年度", "notes": "说明", "result": "结果", "objection": "异议",
    "batch_id": "批次号", "row_count": "明细行数", "total_fen": "合计（元）",
    "rows_root": "明细根哈希", "source_file": "来源文件", "source_sha256": "来源文件摘要",
    "import_id": "导入批次", "county_code": "县代码",
}
PAYEE_ZH = {"household": "农户", "project": "项目", "account": "账户"}
SUBJECT_ZH = {"household": "农户", "account": "资金账户", "project": "项目",
              "region": "花名册导入"}
FIELD_LABEL_ZH = {"official_id": "干部", "role": "签字角色", "key_id": "密钥",
                  "signature": "签名", "draft_id": "草稿", "csrf": "表单"}


def queue(request: Request) -> Drafts:
    return drafts_on(request.app.state)


def shown_value(name: str, value: Any) -> str:
    """A content value in the offices' words (console/format.py: 元, dates, masking)."""
    from console.format import day, mask_id, short, yuan

    if value is None or value == "":
        return "—"
    if name.endswith("_fen") and isinstance(value, int):
        return yuan(value)
    if name.endswith("_date"):
        return day(value)
    if name in ("purpose", "purpose_code"):
        return PURPOSE_ZH.get(str(value), str(value))
    if name == "payee_kind":
        return PAYEE_ZH.get(str(value), str(value))
    if name == "main_cause":
        return CAUSE_ZH.get(str(value), str(value))
    if name == "secondary_causes" and isinstance(value, list):
        return "、".join(CAUSE_ZH.get(str(v), str(v)) for v in value) or "—"
    if name == "members" and isinstance(value, list):
        people = [f"{m.get('name', '')}（{RELATION_ZH.get(str(m.get('relation')), '')}）"
                  for m in value if isinstance(m, dict)]
        return f"{len(value)} 人：" + "、".join(people)
    if name.endswith("_hash"):
        return short(value, 12) + "…"
    if name == "id_number":
        return mask_id(value)
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list):
        return "、".join(shown_value(name, v) for v in value) or "—"
    if isinstance(value, dict):
        return "；".join(f"{FIELD_ZH.get(k, k)}：{shown_value(k, v)}" for k, v in value.items())
    return str(value)


def content_rows(draft: Draft) -> list[tuple[str, str, str]]:
    return [(FIELD_ZH.get(k, k), k, shown_value(k, v)) for k, v in sorted(draft.content.items())]


def subject_read(draft: Draft) -> Read:
    return Read(draft.subject_kind, draft.subject_ref, draft.region_path)


def content_reads(request: Request, draft: Draft) -> list[Read]:
    """The subject and the households its content pays: shown with the content."""
    from eventsourcing.application import AggregateNotFoundError

    from console.web import zhuisu
    from domain.household import Household

    reads = [subject_read(draft)]
    for hid in draft.payee_ids():
        try:
            household = zhuisu(request).repository.get(UUID(hid), deepcopy_from_cache=False)
        except (AggregateNotFoundError, ValueError):
            continue
        if isinstance(household, Household):
            reads.append(Read("household", hid, dict(household.region_path)))
    return reads


def via(request: Request) -> Via:
    route = getattr(request.scope.get("route"), "path", request.url.path)
    return Via(request.method, route, request.scope.get("state", {}).get("request_id"))


def official_of(value: str) -> str:
    """An official's id from what the signer typed: the UUID, or the official's code."""
    text = value.strip()
    if not text:
        raise InvalidInput("请填写干部编号或干部ID", field="official_id")
    try:
        return str(UUID(text))
    except ValueError:
        return str(Official.create_id(text))


def visible_draft(request: Request, person: Person, draft_id: str) -> Draft:
    draft = queue(request).get(draft_id)
    covers(person, draft.region_path, f"草稿 {draft_id}", "draft_id")
    return draft


@router.get("/drafts", response_class=HTMLResponse)
def drafts_page(request: Request, person: Person,
                state: Annotated[str | None, Query(max_length=16)] = "open") -> HTMLResponse:
    may(person, Action.READ)
    if state in ("", "all"):
        state = None
    if state is not None and state not in STATES:
        raise InvalidInput(f"状态应为 {', '.join(STATES)} 之一", field="state")
    found = queue(request).list(person.account.principal, state=state, limit=200)
    record(request, person, [subject_read(d) for d in found])
    return page(request, "drafts.html", person, drafts=found, state=state or "all",
                STATE_ZH=STATE_ZH, SUBJECT_ZH=SUBJECT_ZH)


def draft_page(request: Request, person: Person, draft: Draft,
               error: DomainError | Refusal | None = None) -> HTMLResponse:
    record(request, person, content_reads(request, draft))
    response = page(request, "drafts_draft.html", person, draft=draft,
                    content=content_rows(draft), STATE_ZH=STATE_ZH, SUBJECT_ZH=SUBJECT_ZH,
                    FIELD_LABEL_ZH=FIELD_LABEL_ZH, error=error,
                    may_sign=Action.SUBMIT in _actions(person),
                    mine=draft.created_by_token == person.account.principal.token_id)
    if error is not None:
        response.status_code = error.status
    return response


def _actions(person: Person) -> frozenset[Action]:
    from access.roles import PERMISSIONS

    return PERMISSIONS[person.account.role]


@router.get("/drafts/{draft_id}", response_class=HTMLResponse)
def draft_screen(request: Request, person: Person, draft_id: str) -> HTMLResponse:
    may(person, Action.READ)
    return draft_page(request, person, visible_draft(request, person, draft_id))


@router.get("/drafts/{draft_id}/message")
def draft_message(request: Request, person: Person, draft_id: str,
                  official_id: Annotated[str, Query(max_length=64)] = "",
                  role: Annotated[str, Query(max_length=16)] = "",
                  key_id: Annotated[str, Query(max_length=64)] = "") -> Response:
    """The bytes to sign, as JSON for ``sign.js`` (a refusal as JSON too)."""
    try:
        may(person, Action.READ)
        draft = visible_draft(request, person, draft_id)
        official = official_of(official_id)
        message = queue(request).message(draft_id, official, role, key_id)
    except (DomainError, Refusal) as exc:
        problem = refusal_problem(exc)
        assert problem is not None
        return JSONResponse(problem.as_dict(), status_code=problem.status)
    record(request, person, content_reads(request, draft))
    return JSONResponse({"draft_id": draft.id, "official_id": official, "role": role,
                         "key_id": key_id, "message_base64": b64(message),
                         "message": message.decode("utf-8")},
                        headers={"Cache-Control": "no-store"})


@router.post("/drafts/{draft_id}/signatures", response_class=HTMLResponse)
async def add_signature(request: Request, person: Person, draft_id: str) -> Response:
    form = await check_csrf(request, person)
    may(person, Action.SUBMIT)
    await run_in_threadpool(visible_draft, request, person, draft_id)
    try:
        signature = {"official_id": official_of(str(form.get("official_id", ""))),
                     "role": str(form.get("role", "")), "key_id": str(form.get("key_id", "")),
                     "signature": str(form.get("signature", ""))}
        await run_in_threadpool(queue(request).add_signature, person.account.principal,
                                via(request), draft_id, signature)
    except (DomainError, Refusal) as exc:
        fresh = await run_in_threadpool(queue(request).get, draft_id)
        return draft_page(request, person, fresh, exc)
    return redirect(f"/console/drafts/{draft_id}")


@router.post("/drafts/{draft_id}/withdraw", response_class=HTMLResponse)
async def withdraw(request: Request, person: Person, draft_id: str) -> Response:
    await check_csrf(request, person)
    may(person, Action.SUBMIT)
    await run_in_threadpool(visible_draft, request, person, draft_id)
    await run_in_threadpool(queue(request).withdraw, person.account.principal, via(request),
                            draft_id)
    return redirect(f"/console/drafts/{draft_id}")
