"""Imports (导入) of the offices' own files, end to end: dry run (试导入), then a draft.

Three kinds, each becoming one signed step whose manifest commits to its rows by Merkle
root (``domain.batch``):

==============  ==========================================  ==============================
kind            file                                        step (the draft's command)
==============  ==========================================  ==============================
``roster``      花名册 (the national register's export)        ``Roster.Imported``: new
                                                            households (``imports_roster``)
``payment_list`` 发放清册 / 分户清单 for an account            ``FundAccount.BatchOrdered``
                                                            (``imports_money``)
``bank_return`` 回盘, the bank's answer to a batch             ``FundAccount.ReturnsRecorded``
                                                            (``imports_money``)
==============  ==========================================  ==============================

``dry_run`` reads the file (``exchange.formats.parse``: columns by header, every cell
checked, ID and bank numbers kept only as keyed hashes and masked forms), matches the rows
against the store and answers a :class:`~exchange.imports_common.DryRun`: counts, totals
in fen and 元, the first differences, every row error (row, column, the rule in
Chinese), the file's SHA-256 and encoding — and, only when no row is refused, the
manifest and rows.  **Nothing is stored in the log by a dry run, and nothing is stored
while any row is refused.**

:class:`ImportRuns` keeps dry runs for ``ZHUISU_IMPORT_HOURS`` (default 24) in a small
table beside the access tables (``import_runs``: the answer, the manifest and rows; never
a clear ID number), so the adapters can show one again, hand out its 错误清单
(``exchange.errors_book``) and **confirm** it: confirming a dry run that passed submits a
draft to the signing queue (``access.drafts``) with the manifest as its content and the
rows beside it; the preparer, reviewer and approver then sign it there, and the last
signature runs the step.  A dry run is confirmed once (again: the same draft).

Who may: ``roster`` is submitted by the county approver's role, the money kinds by the
fund officer (``access.roles.STEPS_BY_ROLE``), each within the jurisdiction of the
subject (the county; the account's region), as ``POST /commands`` decides.  Uploads have
their own size limit, ``ZHUISU_MAX_UPLOAD_BYTES`` (default 50 MiB; ``upload_limit``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, Text, insert, select, update

from access.drafts import Draft, Drafts, Via
from access.errors import Refusal
from access.reads import region_key
from access.roles import Principal, check_covers, check_may_submit
from domain.application import Zhuisu
from domain.errors import InvalidInput, NotFound
from domain.limits import fact_date
from exchange.errors_book import errors_csv, errors_workbook
from exchange.formats import FORMATS, parse
from exchange.imports_common import (
    KIND_ZH,
    KINDS,
    STEP_OF,
    DryRun,
    file_facts,
    parsed_for_book,
    refused_rows,
    today,
    with_errors,
)
from exchange.imports_money import payment_dry_run, return_dry_run
from exchange.imports_roster import roster_dry_run
from projections.directory import Directory
from store.schema import create_tables

UPLOAD_ENV = "ZHUISU_MAX_UPLOAD_BYTES"
DEFAULT_UPLOAD_BYTES = 50 * 1024 * 1024
HOURS_ENV = "ZHUISU_IMPORT_HOURS"
DEFAULT_HOURS = 24
CHECKED, CONFIRMING, CONFIRMED = "checked", "confirming", "confirmed"


def _positive_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"must be a whole number, got {raw!r}", field=name) from None
    if value <= 0:
        raise InvalidInput("must be positive", field=name)
    return value


def upload_limit() -> int:
    """The largest file an import takes, in bytes (``ZHUISU_MAX_UPLOAD_BYTES``)."""
    return _positive_env(UPLOAD_ENV, DEFAULT_UPLOAD_BYTES)


class PayloadTooLarge(Refusal):
    """An uploaded file over ``ZHUISU_MAX_UPLOAD_BYTES``."""

    status = 413


def too_large_message(limit: int) -> str:
    return (f"上传的文件超过{limit:,}字节的上限（ZHUISU_MAX_UPLOAD_BYTES），未读取、未保存 / the "
            f"upload is larger than {limit:,} bytes (the limit, ZHUISU_MAX_UPLOAD_BYTES); it "
            "was refused and nothing was stored")


class ImportHasErrors(Refusal):
    """A dry run with refused rows (or nothing to record) cannot be confirmed."""

    status = 422


class ImportNotFound(NotFound):
    """No such dry run, or it has expired."""


# the dry run -------------------------------------------------------------------------
def _date(value: Any, field: str, now: dt.datetime) -> dt.date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return fact_date(value.strip() if isinstance(value, str) else value, field, now)


def _text(params: Mapping[str, Any], name: str, required: bool = True) -> str | None:
    value = params.get(name)
    text = str(value).strip() if value is not None else ""
    if not text:
        if required:
            raise InvalidInput(f"请填写{name} / {name} is needed for this kind of import",
                               field=name)
        return None
    if len(text) > 100:
        raise InvalidInput("at most 100 characters", field=name)
    return text


def dry_run(app: Zhuisu, directory: Directory, kind: str, data: bytes, filename: str,
            params: Mapping[str, Any], *, sheet: str | None = None) -> DryRun:
    """Read, match and check a file of ``kind``; nothing is stored (see the module doc).

    ``params``: roster — ``county``, ``as_of`` (default today); payment_list —
    ``account``, ``purpose`` (code or Chinese title), ``document_no``, ``effective_date``;
    bank_return — ``batch``, ``account`` (optional), ``document_no`` (optional),
    ``effective_date`` (default today).  A whole file refused (unreadable, a required
    column missing) raises ``exchange.files.FileRefused``."""
    if kind not in KINDS:
        raise InvalidInput(f"导入类型须为 {', '.join(KINDS)} 之一 / unknown kind", field="kind")
    now = app.clock()
    filename = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1][:200] or "upload"
    clean: dict[str, Any] = {}
    if kind == "roster":
        clean["county"] = _text(params, "county")
        clean["as_of"] = (_date(params.get("as_of"), "as_of", now) or today()).isoformat()
    elif kind == "payment_list":
        clean["account"] = _text(params, "account")
        clean["purpose"] = _text(params, "purpose")
        clean["document_no"] = _text(params, "document_no")
        day = _date(params.get("effective_date"), "effective_date", now)
        if day is None:
            raise InvalidInput("请填写发放日期 / effective_date is needed", field="effective_date")
        clean["effective_date"] = day.isoformat()
    else:
        clean["batch"] = _text(params, "batch")
        clean["account"] = _text(params, "account", required=False)
        clean["document_no"] = _text(params, "document_no", required=False)
        clean["effective_date"] = (_date(params.get("effective_date"), "effective_date", now)
                                   or today()).isoformat()
    parsed = parse(FORMATS[kind], data, filename, pepper=app.id_pepper, sheet=sheet)
    run = DryRun(id=uuid.uuid4().hex, kind=kind, params=clean,
                 file=file_facts(parsed, len(data)), counts={}, total_fen=0, errors=[],
                 step=STEP_OF[kind])
    if kind == "roster":
        extra = roster_dry_run(run, parsed, app, directory, county_code=clean["county"],
                               as_of=dt.date.fromisoformat(clean["as_of"]))
        run.total_fen = 0
    elif kind == "payment_list":
        extra = payment_dry_run(run, parsed, app, directory, account_id=clean["account"],
                                purpose=clean["purpose"], document_no=clean["document_no"],
                                effective_date=dt.date.fromisoformat(clean["effective_date"]))
    else:
        extra = return_dry_run(run, parsed, app, directory, batch_id=clean["batch"],
                               account_id=clean["account"], document_no=clean["document_no"],
                               effective_date=dt.date.fromisoformat(clean["effective_date"]))
    run.errors = with_errors(parsed, extra).errors
    refused = refused_rows(run.errors)
    run.counts = {"rows_read": parsed.rows_read, "rows_valid": parsed.rows_read - refused,
                  "rows_refused": refused, "errors": len(run.errors), **run.counts}
    if run.errors:
        run.content = run.rows = None
        run.notes.insert(0, f"有{len(run.errors)}处错误（{refused}行被拒绝）：修改文件后重新试导入；"
                            "有错误时不会保存任何数据。")
    return run


def errors_book(run: Mapping[str, Any], form: str = "xlsx") -> bytes:
    """The 错误清单 of a stored dry run: .xlsx (default) or CSV."""
    parsed = parsed_for_book(run["kind"], run)
    return errors_workbook(parsed) if form == "xlsx" else errors_csv(parsed)


# the runs kept until confirmed ------------------------------------------------------
metadata = MetaData()
runs = Table(
    "import_runs", metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("region_key", String(400), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("created_by", String(200), nullable=False),
    Column("created_by_token", String(64), nullable=False),
    Column("draft_id", String(32)),
    Column("body", Text, nullable=False),  # JSON: DryRun.stored()
)


class ImportRuns:
    """Dry runs kept for confirmation, on the store's database (the access tables')."""

    def __init__(self, engine: Engine, app: Zhuisu, *, hours: int | None = None,
                 clock: Callable[[], dt.datetime] | None = None):
        self.engine = engine
        self.app = app
        self.hours = hours or _positive_env(HOURS_ENV, DEFAULT_HOURS)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        create_tables(engine, metadata, owner="zhuisu-imports")

    def save(self, principal: Principal, run: DryRun) -> dict[str, Any]:
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(runs.delete().where(runs.c.expires_at <= now))  # the expired go
            conn.execute(insert(runs).values(
                id=run.id, kind=run.kind, state=CHECKED, region_key=region_key(run.region_path),
                created_at=now, expires_at=now + dt.timedelta(hours=self.hours),
                created_by=principal.name, created_by_token=principal.token_id,
                body=json.dumps(run.stored(), ensure_ascii=False, default=str)))
        return self.get(run.id)

    def get(self, run_id: str) -> dict[str, Any]:
        """A stored dry run (its answer, manifest and rows), with ``state``, ``draft_id``
        and ``expires_at``; ``ImportNotFound`` if there is none or it has expired."""
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == str(run_id))).mappings().first()
        if row is None or _utc(row["expires_at"]) <= self.clock():
            raise ImportNotFound(f"没有试导入记录{run_id}（不存在或已过期，请重新上传） / no "
                                 f"dry run {run_id} (none, or expired)", field="import_id")
        body = json.loads(row["body"])
        body.update(state=row["state"], draft_id=row["draft_id"],
                    created_by=row["created_by"], created_at=_utc(row["created_at"]).isoformat(),
                    expires_at=_utc(row["expires_at"]).isoformat())
        return body

    def confirm(self, principal: Principal, via: Via, run_id: str, drafts: Drafts) -> Draft:
        """Submit the dry run's command as a draft of the signing queue (once)."""
        run = self.get(run_id)
        check_may_submit(principal, run["step"])
        check_covers(principal, run["region_path"], f"import {run_id}", "import_id")
        if run["state"] == CONFIRMED and run["draft_id"]:
            return drafts.get(run["draft_id"])
        if not run["ok"]:
            n = run["counts"].get("rows_refused", 0)
            why = (f"试导入有{len(run['errors'])}处错误（{n}行被拒绝），不能确认导入；修改文件后重新"
                   "试导入 / the dry run refused rows: nothing is stored" if run["errors"] else
                   "文件中没有可导入的内容 / nothing to import")
            raise ImportHasErrors(why, field="file")
        with self.engine.begin() as conn:
            taken = conn.execute(update(runs).where(runs.c.id == run_id,
                                                    runs.c.state == CHECKED)
                                 .values(state=CONFIRMING)).rowcount
        if not taken:
            raise ImportHasErrors("该试导入正在确认中或已确认 / being confirmed already",
                                  field="import_id")
        try:
            draft = drafts.submit(principal, via, step=run["step"], subject=run["subject"],
                                  content=run["manifest"], rows=run["rows"])
        except BaseException:
            with self.engine.begin() as conn:
                conn.execute(update(runs).where(runs.c.id == run_id).values(state=CHECKED))
            raise
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                state=CONFIRMED, draft_id=draft.id))
        return draft


def import_runs_on(state: Any) -> ImportRuns:
    """The kept dry runs of a running server (its ``app.state``: the application and the
    access tables' engine), made on first use and kept there (HTTP and console share it)."""
    runs = getattr(state, "import_runs", None)
    if runs is None or runs.app is not state.zhuisu:
        runs = ImportRuns(state.access_log.engine, state.zhuisu)
        state.import_runs = runs
    return runs


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def summary_lines(run: Mapping[str, Any]) -> list[str]:
    """The dry run in a few Chinese lines (the CLI prints them)."""
    c, f = run["counts"], run["file"]
    lines = [f"{KIND_ZH[run['kind']]}：{f['filename']}  SHA-256 {f['sha256']}  "
             f"编码 {f.get('encoding') or f.get('kind')}",
             f"读取 {c.get('rows_read', 0)} 行，有效 {c.get('rows_valid', 0)} 行，"
             f"拒绝 {c.get('rows_refused', 0)} 行，错误 {c.get('errors', 0)} 处"]
    if run["kind"] == "roster":
        lines.append(f"农户 {c.get('households', 0)} 户：新增 {c.get('households_new', 0)}，"
                     f"已存在 {c.get('households_existing', 0)}，"
                     f"差异 {c.get('households_differing', 0)}；人员 {c.get('persons', 0)} 人")
    elif run["kind"] == "payment_list":
        lines.append(f"收款户 {c.get('payees', 0)} 户，合计 {run['total_yuan']} 元"
                     f"（{run['total_fen']} 分）")
    else:
        lines.append(f"批次发放 {c.get('payments', 0)} 笔：成功 {c.get('credited', 0)} 笔，"
                     f"失败退回 {c.get('returned', 0)} 笔；合计 {run['total_yuan']} 元")
    lines.extend(run.get("notes") or [])
    for e in run["errors"][:50]:
        where = f"第{e['row']}行" if e["row"] else "整个文件"
        column = f"［{e['column']}］" if e.get("column") else ""
        value = f"（{e['value']}）" if e.get("value") else ""
        lines.append(f"  {where}{column}：{e['rule']}{value}")
    if len(run["errors"]) > 50:
        lines.append(f"  ……另有{len(run['errors']) - 50}处错误，见错误清单")
    return lines


__all__ = ["dry_run", "ImportRuns", "import_runs_on", "errors_book", "upload_limit", "PayloadTooLarge",
           "ImportHasErrors", "ImportNotFound", "summary_lines", "too_large_message", "KINDS",
           "KIND_ZH", "STEP_OF", "DryRun"]
