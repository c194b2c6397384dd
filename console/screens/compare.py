"""大数据比对: other departments' registers uploaded (dry run with the refused rows, then
confirm), the snapshots kept, and the comparison models' matches with their evidence —
the register row's fields, the household and the payments by link — and the signers
answerable (谁签字谁负责); an inspector raises a lead (线索) from a match.

Writes are an inspector's (``Action.WRITE_CASES``), as ``POST /registers`` is
(``api/routes/compare.py``): the upload is kept in memory for the person who made it
(``Uploads``, an hour at most) between the dry run and 确认导入, then imported through the
same verb (``exchange.registers.import_register``), recorded under the person's name, role
and account.  Matches are read within the person's jurisdiction, and every match shown is
recorded in the access log as a read of its household, as the API records it.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from access.reads import Read
from access.roles import Action
from console.screens.cases import can_write, household_codes, officials_by_id, payments_of, \
    recorded_by, today
from console.screens.overview import home_region
from console.web import ConsoleRoute, Person, check_csrf, covers, may, page, read_models, \
    record, redirect, zhuisu
from domain.errors import InvalidInput, NotFound
from domain.registers import KIND_TITLES, ROW_FIELDS, RegisterKind
from exchange.imports import PayloadTooLarge, too_large_message, upload_limit
from exchange.registers import import_register
from inspection.rules.compare import MODEL_IDS, MODELS, CompareSettings
from projections import compare
from projections.compare.evidence import ensure_evidence, register_rows

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
KEEP_SECONDS = 3600
MAX_KEPT = 20

MODEL_ZH = {
    "COMPARE_PAID_AFTER_DEATH": "死亡后仍发放", "COMPARE_PAYROLL_MEMBER": "财政供养人员",
    "COMPARE_CADRE_RELATIVE": "村干部近亲属", "COMPARE_VEHICLE": "名下有车辆",
    "COMPARE_COMMERCIAL_HOUSING": "名下有商品房", "COMPARE_BUSINESS_OWNER": "工商登记（法人、股东）",
    "COMPARE_DUPLICATE_PERSON": "一人多户", "COMPARE_DIBAO_CONTRADICTS": "低保状态矛盾",
    "COMPARE_DISABILITY_CONTRADICTS": "因残致贫无残疾登记"}
FIELD_ZH = {
    "date_of_death": "死亡日期", "payroll_unit": "工作单位", "position": "职务",
    "cadre_id_hash": "干部证件号码（摘要）", "cadre_position": "干部职务", "relation": "关系",
    "degree": "亲等", "plate": "号牌号码", "vehicle_type": "车辆类型", "price_fen": "购置价格（元）",
    "location": "坐落", "area_m2": "建筑面积（平方米）", "property_kind": "房屋性质",
    "credit_code": "统一社会信用代码", "role": "身份", "dibao_status": "保障状态",
    "start_date": "开始日期", "end_date": "停保日期", "disability_grade": "残疾等级"}
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


class Uploads:
    """Uploaded register files between the dry run and 确认导入: by a random key, for the
    account that uploaded them only, an hour at most, ``MAX_KEPT`` at once."""

    def __init__(self) -> None:
        self._kept: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def keep(self, account: str, **upload: Any) -> str:
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._drop_old()
            while len(self._kept) >= MAX_KEPT:
                self._kept.pop(next(iter(self._kept)))
            self._kept[key] = {"account": account, "at": time.monotonic(), **upload}
        return key

    def take(self, account: str, key: str, *, remove: bool = False) -> dict[str, Any]:
        with self._lock:
            self._drop_old()
            found = self._kept.get(key)
            if found is None or found["account"] != account:
                raise NotFound("试导入已过期或不存在，请重新上传文件", field="upload")
            if remove:
                del self._kept[key]
            return found

    def _drop_old(self) -> None:
        old = [k for k, v in self._kept.items() if time.monotonic() - v["at"] > KEEP_SECONDS]
        for k in old:
            del self._kept[k]


def uploads_on(state: Any) -> Uploads:
    found = getattr(state, "register_uploads", None)
    if found is None:
        found = state.register_uploads = Uploads()
    return found


def _account(person: Person) -> str:
    return str(person.account.principal.token_id)


def _snapshots(db: Any) -> list[dict]:
    try:
        return compare.list_snapshots(db)
    except Exception:  # noqa: BLE001 - read models not built yet
        return []


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, person: Person,
                 model: Annotated[str | None, Query(max_length=40)] = None,
                 region: Annotated[str | None, Query(max_length=32)] = None,
                 after: Annotated[str | None, Query(max_length=300)] = None) -> HTMLResponse:
    """The snapshots, the counts per model and the matches of one model (or all)."""
    may(person, Action.READ)
    if model and model not in MODELS:
        raise InvalidInput("未知的比对模型", field="model")
    found = home_region(request, person, region or None)
    db = read_models(request)
    shown = compare.list_matches(db, model_id=model or None, region_code=found.code,
                                 after=after or None, limit=PAGE + 1)
    more = len(shown) > PAGE
    shown = shown[:PAGE]
    record(request, person, [Read("household", m["household_id"], m["region_path"] or {})
                             for m in shown])
    codes = household_codes(db, [m["household_id"] for m in shown])
    settings = CompareSettings.from_env()
    args = {k: v for k, v in {"model": model, "region": region}.items() if v}
    return page(request, "compare.html", person, snapshots=_snapshots(db), matches=shown,
                counts=compare.match_counts(db, found.code), models=MODELS,
                model_ids=MODEL_IDS, MODEL_ZH=MODEL_ZH, KIND_TITLES=KIND_TITLES,
                kinds=[k.value for k in RegisterKind], model=model or "",
                region_code=found.code, codes=codes, args=args,
                next_after=shown[-1]["match_id"] if more else None,
                can_write=can_write(person), settings=settings,
                today=today(request).isoformat(),
                limit_mb=upload_limit() // (1024 * 1024))


@router.post("/compare/registers", response_class=HTMLResponse)
async def upload(request: Request, person: Person) -> Response:
    """试导入: read the file, show what would be kept and what is refused."""
    form = await check_csrf(request, person)
    may(person, Action.WRITE_CASES)
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        raise InvalidInput("请选择要导入的文件", field="file")
    limit = upload_limit()
    if file.size is not None and file.size > limit:
        raise PayloadTooLarge(too_large_message(limit), field="file")
    data = await file.read()
    await file.close()
    fields = {"department": str(form.get("department") or "").strip(),
              "kind": str(form.get("kind") or ""), "as_of": str(form.get("as_of") or ""),
              "filename": file.filename}
    if fields["kind"] not in KIND_TITLES:
        raise InvalidInput("请选择比对数据的种类", field="kind")
    app = zhuisu(request)
    summary = await run_in_threadpool(
        import_register, app, department=fields["department"], kind=fields["kind"],
        as_of=fields["as_of"], data=data, filename=file.filename,
        imported_by=recorded_by(person), confirm=False)
    key = uploads_on(request.app.state).keep(_account(person), data=data, **fields)
    return page(request, "compare_upload.html", person, summary=summary, key=key,
                KIND_TITLES=KIND_TITLES)


@router.post("/compare/registers/{key}/confirm", response_class=HTMLResponse)
async def confirm(request: Request, person: Person, key: str) -> Response:
    """确认导入: the kept rows and the snapshot's one event."""
    await check_csrf(request, person)
    may(person, Action.WRITE_CASES)
    kept = uploads_on(request.app.state).take(_account(person), key[:64])
    summary = await run_in_threadpool(
        import_register, zhuisu(request), department=kept["department"], kind=kept["kind"],
        as_of=kept["as_of"], data=kept["data"], filename=kept["filename"],
        imported_by=recorded_by(person), confirm=True)
    uploads_on(request.app.state).take(_account(person), key[:64], remove=True)
    return page(request, "compare_upload.html", person, summary=summary, key=None,
                KIND_TITLES=KIND_TITLES)


def register_row(db: Any, snapshot_id: str | None, row_no: int | None) -> dict | None:
    """The kept row a match came from (its fields in Chinese; the ID only as its hash)."""
    if snapshot_id is None or row_no is None:
        return None
    ensure_evidence(db)
    r = register_rows.c
    with db.connect() as conn:
        found = conn.execute(select(r.kind, r.fields).where(
            r.snapshot_id == snapshot_id, r.row_no == row_no)).mappings().first()
    if found is None:
        return None
    fields = dict(found["fields"] or {})
    out = []
    for name in ROW_FIELDS.get(found["kind"], ()):
        value = fields.get(name)
        if name == "price_fen" and isinstance(value, int):
            value = f"{value / 100:,.2f}"
        elif name == "cadre_id_hash" and value:
            value = str(value)[:12] + "…"
        out.append((FIELD_ZH.get(name, name), "—" if value in (None, "") else value))
    return {"kind": found["kind"], "row_no": row_no, "fields": out}


@router.get("/compare/matches/{match_id:path}", response_class=HTMLResponse)
def match_page(request: Request, person: Person, match_id: str) -> HTMLResponse:
    may(person, Action.READ)
    if len(match_id) > 300:
        raise InvalidInput("比对结果编号过长", field="match_id")
    db = read_models(request)
    m = compare.get_match(db, match_id)
    covers(person, m["region_path"] or {}, f"比对结果 {match_id}", "match_id")
    record(request, person, [Read("household", m["household_id"], m["region_path"] or {})])
    pays = payments_of(db, [(str(e.get("account_id")), str(e["ref"]))
                            for e in m["evidence"] if e["kind"] == "payment"])
    households = [str(e["ref"]) for e in m["evidence"] if e["kind"] == "household"]
    people = officials_by_id(db, m["signers"])
    snapshot = next((s for s in _snapshots(db) if s["snapshot_id"] == m["snapshot_id"]), None)
    from projections import leads as lead_queries

    lead = lead_queries.leads_by_source(db, [match_id]).get(match_id)
    return page(request, "compare_match.html", person, m=m, MODEL_ZH=MODEL_ZH,
                model=MODELS[m["model_id"]], row=register_row(db, m["snapshot_id"], m["row_no"]),
                payments=sorted(pays.values(), key=lambda p: str(p["effective_date"])),
                households=households, codes=household_codes(db, households),
                signers=[people.get(s) or {"official_id": s} for s in m["signers"]],
                snapshot=snapshot, KIND_TITLES=KIND_TITLES, lead=lead,
                can_write=can_write(person), today=today(request).isoformat())


__all__ = ["MODEL_ZH", "router", "uploads_on"]
