"""Imports (导入) of the offices' files over HTTP: upload, dry run, errors, confirm.

``POST /imports/{kind}`` (``roster`` 花名册, ``payment_list`` 发放清册/分户清单,
``bank_return`` 回盘) takes a multipart upload — the file as ``file`` and the kind's
parameters as form fields — spooled to a temporary file under its own size limit
(``ZHUISU_MAX_UPLOAD_BYTES``, default 50 MiB; over it: 413 ``PayloadTooLarge`` naming the
limit, ``api.limits``), reads and checks it (``exchange.imports.dry_run``) and keeps the
result (``import_runs``).  ``dry_run`` (default true) answers the dry run; ``dry_run=false``
also confirms it when no row is refused.  ``GET /imports/{import_id}`` is the kept
result; ``…/errors.xlsx`` and ``…/errors.csv`` the 错误清单; ``POST
/imports/{import_id}/confirm`` submits the draft to the signing queue (``POST /drafts``'
rules: the preparer, reviewer and approver then sign it at ``/drafts/{id}``).

Who may: the role that submits the kind's step (roster: ``county_approver``; payment
lists and returns: ``fund_officer``), within the jurisdiction of its subject (the county;
the account's region), as ``POST /commands``.  Nothing is stored in the log here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from access.drafts import Via, drafts_on
from access.reads import Read
from access.roles import check_covers, check_may_submit
from api.deps import App, Reader, Submitter, record_reads
from api.schemas import READ_PROBLEMS, WRITE_PROBLEMS
from domain.errors import InvalidInput
from exchange.imports import (
    STEP_OF,
    ImportRuns,
    PayloadTooLarge,
    dry_run,
    errors_book,
    import_runs_on,
    too_large_message,
    upload_limit,
)

router = APIRouter(tags=["imports 导入"])

Kind = Literal["roster", "payment_list", "bank_return"]
ImportId = Annotated[str, Path(min_length=1, max_length=64, description="the dry run's id")]
PARAMS = ("county", "as_of", "account", "purpose", "document_no", "effective_date", "batch",
          "sheet")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ImportOut(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "import_id": "9f1c…", "kind": "payment_list", "kind_zh": "发放清册（分户清单）",
        "step": "FundAccount.BatchOrdered", "ok": False,
        "file": {"filename": "发放清册.csv", "sha256": "3b5d…", "encoding": "gb18030"},
        "counts": {"rows_read": 6, "rows_valid": 3, "rows_refused": 3, "errors": 3,
                   "payees": 3},
        "total_fen": 320050, "total_yuan": "3,200.50",
        "errors": [{"row": 6, "column": "证件号码", "rule": "证件号码校验位错误",
                    "value": "522625********0019"}],
        "draft": None}]})

    import_id: str
    kind: str
    step: str
    ok: bool = Field(description="no row refused and something to record: may be confirmed")
    counts: dict[str, int]
    total_fen: int
    total_yuan: str
    errors: list[dict[str, Any]] = Field(description="row, column (as in the file), rule "
                                         "(Chinese), value (ID and bank numbers masked)")
    file: dict[str, Any] = Field(description="filename, sha256, encoding, sheet, header row")


def runs_on(request: Request) -> ImportRuns:
    return import_runs_on(request.app.state)


def via(request: Request) -> Via:
    route = getattr(request.scope.get("route"), "path", request.url.path)
    return Via(request.method, route, request.scope.get("state", {}).get("request_id"))


def shown(run: dict[str, Any]) -> dict[str, Any]:
    """A kept dry run as answered: without its rows."""
    return {k: v for k, v in run.items() if k not in ("rows", "region_path")}


def subject_read(run: dict[str, Any]) -> Read:
    if run["kind"] == "roster":
        return Read("region", run["params"]["county"], run["region_path"])
    return Read("account", run["params"].get("account_id") or run["params"]["account"],
                run["region_path"])


async def read_upload(request: Request) -> tuple[bytes, str, dict[str, str]]:
    """The uploaded file (spooled to a temporary file by the multipart parser, counted by
    ``api.limits``) and the form's other fields."""
    limit = upload_limit()
    try:
        form = await request.form(max_files=1, max_fields=20)
    except PayloadTooLarge:
        raise
    except Exception as exc:  # not multipart, or malformed
        raise InvalidInput("须为multipart/form-data上传，文件字段名为file / send the file as "
                           "multipart/form-data, field 'file'", field="file") from exc
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInput("没有上传文件（字段名file） / no file in field 'file'", field="file")
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(too_large_message(limit), field="file")
    data = await upload.read()
    await upload.close()
    fields = {k: str(v) for k, v in form.items() if k in PARAMS and isinstance(v, str)}
    return data, upload.filename or "upload", fields


def _flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@router.post("/imports/{kind}", response_model=ImportOut, responses=WRITE_PROBLEMS)
async def post_import(kind: Annotated[Kind, Path(description=(
        "roster: 花名册 (form fields county, as_of); payment_list: 发放清册/分户清单 (account, "
        "purpose, document_no, effective_date); bank_return: 回盘 (batch, account?, "
        "document_no?, effective_date?)"))],
        request: Request, submitter: Submitter, app: App) -> Any:
    """Upload a file and dry-run it (试导入): counts, totals, the first differences, every
    row error; nothing is stored in the log.  Form field ``dry_run=false`` also confirms
    it (a draft in the signing queue) when no row is refused."""
    check_may_submit(submitter, STEP_OF[kind])
    data, filename, fields = await read_upload(request)
    form = await request.form()
    confirm = not _flag(str(form.get("dry_run") or ""), True)
    runs = runs_on(request)

    def work() -> dict[str, Any]:
        directory = request.app.state.directory
        run = dry_run(app, directory, kind, data, filename, fields, sheet=fields.get("sheet"))
        check_covers(submitter, run.region_path, f"the subject of {run.step}", "file")
        return runs.save(submitter, run)

    kept = await run_in_threadpool(work)
    record_reads(request, submitter, [subject_read(kept)])
    answer = shown(kept)
    if confirm and kept["ok"]:
        draft = await run_in_threadpool(runs.confirm, submitter, via(request),
                                        kept["import_id"], drafts_on(request.app.state))
        answer.update(state="confirmed", draft_id=draft.id, draft=draft.summary())
    return answer


@router.get("/imports/{import_id}", response_model=ImportOut, responses=READ_PROBLEMS)
def get_import(import_id: ImportId, reader: Reader, request: Request) -> Any:
    """A kept dry run (``ZHUISU_IMPORT_HOURS``, default 24 hours): its answer, its state
    (checked / confirmed) and the draft it became."""
    run = runs_on(request).get(import_id)
    check_covers(reader, run["region_path"], f"import {import_id}", "import_id")
    record_reads(request, reader, [subject_read(run)])
    return shown(run)


@router.get("/imports/{import_id}/errors.{form}", response_class=Response,
            responses={200: {"description": "导入错误清单", "content": {
                XLSX: {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string"}}}}, **READ_PROBLEMS})
def get_errors(import_id: ImportId, form: Literal["xlsx", "csv"], reader: Reader,
               request: Request) -> Response:
    """The dry run's errors as the office fixes its file from them (错误清单): row, column,
    the rule in Chinese, the value (ID and bank numbers masked)."""
    run = runs_on(request).get(import_id)
    check_covers(reader, run["region_path"], f"import {import_id}", "import_id")
    record_reads(request, reader, [subject_read(run)])
    name = f"错误清单_{run['file']['filename'].rsplit('.', 1)[0]}.{form}"
    media = XLSX if form == "xlsx" else "text/csv; charset=utf-8"
    return Response(errors_book(run, form), media_type=media, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"})


@router.post("/imports/{import_id}/confirm", response_model=ImportOut, status_code=201,
             responses=WRITE_PROBLEMS)
def confirm_import(import_id: ImportId, submitter: Submitter, request: Request) -> Any:
    """Confirm a dry run that passed: its manifest and rows become a draft of the signing
    queue (``/drafts/{draft_id}``), to be signed by the preparer, reviewer and approver.
    Confirmed again: the same draft.  A dry run with refused rows: 422 ``ImportHasErrors``."""
    runs = runs_on(request)
    draft = runs.confirm(submitter, via(request), import_id, drafts_on(request.app.state))
    run = runs.get(import_id)
    return {**shown(run), "draft_id": draft.id, "draft": draft.summary()}
