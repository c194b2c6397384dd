"""导入 (imports): upload an office's file, see the dry run, confirm it into the signing queue.

Three kinds (``exchange.imports``): 花名册 → new households (county approvers), 发放清册 /
分户清单 → a payment batch on an account, 回盘 → the batch's bank return (fund officers).
The upload is a multipart form with the session's CSRF token, under its own size limit
(``ZHUISU_MAX_UPLOAD_BYTES``, ``api.limits``); the dry run (试导入) is kept
(``exchange.imports.ImportRuns``) and shown at ``/console/imports/{id}``: counts, totals in
元, the first differences, every error (行号 / 列 / 错误说明 / 原值, ID and bank numbers
masked) and the 错误清单 to download.  When no row is refused, 确认导入 submits the draft to
the signing queue and leads to it (``/console/drafts/{id}``), where the preparer, reviewer
and approver sign.  The same rules as ``POST /imports/{kind}``: the kind's step must be the
person's role's, its subject within their jurisdiction.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from access.drafts import Via, drafts_on
from access.reads import Read
from access.roles import STEPS_BY_ROLE, Action, check_covers, check_may_submit
from console.web import (
    ConsoleRoute,
    Person,
    check_csrf,
    may,
    page,
    read_models,
    record,
    redirect,
)
from domain.errors import InvalidInput
from domain.money import PURPOSES, PayeeKind
from exchange.labels import FUND_ZH
from projections.batches import list_batches
from projections.queries import balances
from exchange.imports import (
    KIND_ZH,
    KINDS,
    STEP_OF,
    PayloadTooLarge,
    dry_run,
    errors_book,
    import_runs_on,
    too_large_message,
    upload_limit,
)

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

PARAMS = ("county", "as_of", "account", "purpose", "document_no", "effective_date", "batch")
STATE_ZH = {"checked": "已试导入，待确认", "confirming": "确认中", "confirmed": "已提交签字队列"}
HOUSEHOLD_PURPOSES = {code: p.title for code, p in PURPOSES.items()
                      if PayeeKind.HOUSEHOLD in p.payees and not p.negative_list_item}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def kinds_of(person: Person) -> list[str]:
    """The kinds this person's role may import."""
    steps = STEPS_BY_ROLE[person.account.role]
    return [k for k in KINDS if STEP_OF[k] in steps]


def via(request: Request) -> Via:
    route = getattr(request.scope.get("route"), "path", request.url.path)
    return Via(request.method, route, request.scope.get("state", {}).get("request_id"))


def subject_read(run: dict[str, Any]) -> Read:
    if run["kind"] == "roster":
        return Read("region", run["params"]["county"], run["region_path"])
    return Read("account", run["params"].get("account_id") or run["params"]["account"],
                run["region_path"])


def visible_run(request: Request, person: Person, import_id: str) -> dict[str, Any]:
    run = import_runs_on(request.app.state).get(import_id)
    check_covers(person.account.principal, run["region_path"], f"导入 {import_id}", "import_id")
    return run


@router.get("/imports", response_class=HTMLResponse)
def imports_page(request: Request, person: Person) -> HTMLResponse:
    may(person, Action.READ)
    principal = person.account.principal
    # The accounts and the batches awaiting their bank return, in the person's reach: chosen
    # by name, never typed as ids.
    db = read_models(request)
    accounts = [a for a in balances(db, region_code=principal.region_code)
                if a.get("level") != "village"] if principal.region_code else []
    pending = list_batches(db, level=principal.region_level, code=principal.region_code,
                           state="pending", limit=200)[0] if principal.region_code else []
    return page(request, "imports.html", person, kinds=kinds_of(person), KIND_ZH=KIND_ZH,
                accounts=accounts, pending=pending, FUND_ZH=FUND_ZH,
                purposes=HOUSEHOLD_PURPOSES, county=principal.region_code
                if principal.region_level == "county" else "",
                limit_mb=upload_limit() // (1024 * 1024))


@router.post("/imports", response_class=HTMLResponse)
async def upload(request: Request, person: Person) -> Response:
    form = await check_csrf(request, person)  # over the upload limit: 413 PayloadTooLarge
    may(person, Action.SUBMIT)
    kind = str(form.get("kind", ""))
    if kind not in KINDS:
        raise InvalidInput("请选择导入类型", field="kind")
    check_may_submit(person.account.principal, STEP_OF[kind])
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput("请选择要导入的文件", field="file")
    limit = upload_limit()
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(too_large_message(limit), field="file")
    data = await upload.read()
    await upload.close()
    params = {k: str(form.get(k) or "") for k in PARAMS}
    runs = import_runs_on(request.app.state)
    principal = person.account.principal

    def work() -> dict[str, Any]:
        result = dry_run(request.app.state.zhuisu, request.app.state.directory, kind, data,
                         upload.filename or "upload", params)
        check_covers(principal, result.region_path, f"{STEP_OF[kind]} 的对象", "file")
        return runs.save(principal, result)

    kept = await run_in_threadpool(work)
    return redirect(f"/console/imports/{kept['import_id']}")


@router.get("/imports/{import_id}", response_class=HTMLResponse)
def import_screen(request: Request, person: Person, import_id: str) -> HTMLResponse:
    may(person, Action.READ)
    run = visible_run(request, person, import_id)
    record(request, person, [subject_read(run)])
    return page(request, "imports_run.html", person, run=run, KIND_ZH=KIND_ZH,
                STATE_ZH=STATE_ZH, may_confirm=run["kind"] in kinds_of(person))


@router.get("/imports/{import_id}/errors.{form}")
def import_errors(request: Request, person: Person, import_id: str, form: str) -> Response:
    may(person, Action.READ)
    if form not in ("xlsx", "csv"):
        raise InvalidInput("错误清单格式须为 xlsx 或 csv", field="form")
    run = visible_run(request, person, import_id)
    record(request, person, [subject_read(run)])
    name = f"错误清单_{run['file']['filename'].rsplit('.', 1)[0]}.{form}"
    return Response(errors_book(run, form),
                    media_type=XLSX if form == "xlsx" else "text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f"attachment; filename*=UTF-8''{quote(name, safe='')}"})


@router.post("/imports/{import_id}/confirm", response_class=HTMLResponse)
async def confirm(request: Request, person: Person, import_id: str) -> Response:
    await check_csrf(request, person)
    may(person, Action.SUBMIT)
    runs = import_runs_on(request.app.state)
    await run_in_threadpool(visible_run, request, person, import_id)
    draft = await run_in_threadpool(runs.confirm, person.account.principal, via(request),
                                    import_id, drafts_on(request.app.state))
    return redirect(f"/console/drafts/{draft.id}")
