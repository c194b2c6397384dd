"""Imports (导入) from the command line, on the store directly (like ``zhuisu draft``):

    zhuisu import roster 花名册.xlsx --county 522625 [--as-of 2025-06-30] [--dry-run] [--errors 错误清单.xlsx]
    zhuisu import payments 发放清册.csv --account ID --purpose hh_industry --document-no "羊财支〔2025〕7号" --date 2025-07-01
    zhuisu import returns 回盘.csv --batch BATCH_ID [--account ID] [--document-no N] [--date D]

Each reads and checks the file (``exchange.imports.dry_run``) and prints the summary: rows
read, valid and refused, households or payees, totals in 元, the first differences, every
row error.  With ``--dry-run`` it stops there; otherwise, when no row is refused, it submits
the draft to the signing queue (签字队列) and prints its id: the preparer, reviewer and
approver then sign it with ``zhuisu sign --draft ID`` (the last signature runs it).  Any
refused row: exit 2, nothing stored (``--errors FILE`` writes the 错误清单, .xlsx or .csv by
its suffix).  A file refused as a whole (unreadable, a column missing): exit 2 too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from access.roles import STEPS_BY_ROLE, ApiRole, Principal
from access.tables import open_engine
from access.drafts import Drafts, Via
from cli.adapter import UserError, cli_user, run, settings
from exchange.imports import STEP_OF, ImportRuns, dry_run, errors_book, summary_lines, upload_limit
from projections.directory import Directory
from store.settings import build_app

app = typer.Typer(name="import", help="Import the offices' files (导入): 花名册 (roster), "
                  "发放清册 (payments), 回盘 (returns); a dry run, then a draft to sign.",
                  no_args_is_help=True)

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="check only: store nothing, "
                                         "submit no draft")]
ErrorsOpt = Annotated[Path | None, typer.Option("--errors", help="write the 错误清单 here "
                                                "(.xlsx, or .csv) when rows are refused")]
SheetOpt = Annotated[str | None, typer.Option("--sheet", help="the workbook's sheet (default: "
                                              "the first)")]


def operator(step: str) -> Principal:
    role = next((r for r, steps in STEPS_BY_ROLE.items() if step in steps), ApiRole.ADMIN)
    return Principal(cli_user(), cli_user(), role, None, None)


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > upload_limit():
            raise UserError(f"{path} is larger than {upload_limit():,} bytes "
                            "(ZHUISU_MAX_UPLOAD_BYTES)")
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc


def _import(kind: str, file: Path, params: dict[str, Any], *, check_only: bool,
            errors: Path | None, sheet: str | None) -> None:
    s = settings()
    zhuisu = run(lambda: build_app(s))
    data = run(lambda: _read(file))
    result = run(lambda: dry_run(zhuisu, Directory(), kind, data, file.name, params,
                                 sheet=sheet))
    stored = result.stored()
    for line in summary_lines(stored):
        typer.echo(line)
    for d in result.differences[:20]:
        fields = "；".join(f"{f['field_zh']}：系统 {f['recorded']} / 文件 {f['in_file']}"
                          for f in d["fields"])
        typer.echo(f"  差异 {d['household_code']}（第{'、'.join(map(str, d['rows']))}行）：{fields}")
    if result.errors:
        if errors is not None:
            form = "csv" if errors.suffix.lower() == ".csv" else "xlsx"
            errors.write_bytes(errors_book(stored, form))
            typer.echo(f"错误清单已写入 {errors}")
        typer.echo(f"error: ImportHasErrors [file]: {result.counts['rows_refused']} row(s) "
                   f"refused ({len(result.errors)} error(s)); nothing was stored — fix the "
                   "file and import it again", err=True)
        raise typer.Exit(2)
    if not result.ok:
        typer.echo("文件中没有可导入的内容，未提交。")
        return
    if check_only:
        typer.echo(f"试导入通过（--dry-run：未保存）。清单根哈希 {result.content['rows_root']}")
        return
    engine = run(lambda: open_engine(s.database_url))
    who = operator(STEP_OF[kind])
    runs = ImportRuns(engine, zhuisu)
    drafts = Drafts(engine, zhuisu)
    kept = run(lambda: runs.save(who, result))
    draft = run(lambda: runs.confirm(who, Via("CLI", f"zhuisu import {kind}"),
                                     kept["import_id"], drafts))
    typer.echo(f"已提交签字队列：草稿 {draft.id}（{draft.step}，待签：{'、'.join(draft.missing_roles)}）")
    typer.echo(f"签字：zhuisu sign --draft {draft.id} --key me.key --official OFFICIAL_ID "
               "--role preparer|reviewer|approver")


@app.command()
def roster(file: Annotated[Path, typer.Argument(help="the 花名册 (.xlsx, .xls or CSV)")],
           county: Annotated[str, typer.Option("--county", help="the county's region code")],
           as_of: Annotated[str | None, typer.Option("--as-of", help="the roster's as-of "
                                                     "date (default today)")] = None,
           dry: DryRunOpt = False, errors: ErrorsOpt = None, sheet: SheetOpt = None) -> None:
    """花名册 → new households (Roster.Imported), grouped by 户编号."""
    _import("roster", file, {"county": county, "as_of": as_of}, check_only=dry,
            errors=errors, sheet=sheet)


@app.command()
def payments(file: Annotated[Path, typer.Argument(help="the 发放清册 / 分户清单")],
             account: Annotated[str, typer.Option("--account", help="the paying account's id")],
             purpose: Annotated[str, typer.Option("--purpose", help="purpose code or its "
                                                  "Chinese title (GET /steps)")],
             document_no: Annotated[str, typer.Option("--document-no", help="支付令文号")],
             date: Annotated[str, typer.Option("--date", help="the payment date")],
             dry: DryRunOpt = False, errors: ErrorsOpt = None,
             sheet: SheetOpt = None) -> None:
    """发放清册 → a payment batch on the account (FundAccount.BatchOrdered)."""
    _import("payment_list", file, {"account": account, "purpose": purpose,
                                   "document_no": document_no, "effective_date": date},
            check_only=dry, errors=errors, sheet=sheet)


@app.command()
def returns(file: Annotated[Path, typer.Argument(help="the bank's 回盘")],
            batch: Annotated[str, typer.Option("--batch", help="the batch it answers")],
            account: Annotated[str | None, typer.Option("--account", help="the batch's "
                                                        "account (found if not given)")] = None,
            document_no: Annotated[str | None, typer.Option("--document-no")] = None,
            date: Annotated[str | None, typer.Option("--date", help="default today")] = None,
            dry: DryRunOpt = False, errors: ErrorsOpt = None, sheet: SheetOpt = None) -> None:
    """回盘 → the batch's bank return (FundAccount.ReturnsRecorded)."""
    _import("bank_return", file, {"batch": batch, "account": account,
                                  "document_no": document_no, "effective_date": date},
            check_only=dry, errors=errors, sheet=sheet)
