"""大数据比对 and 线索处置 at the terminal.

``zhuisu register import FILE --department 县民政局 --kind death --as-of 2025-06-30
[--confirm]`` (a dry run's summary unless ``--confirm``), ``zhuisu register list``,
``zhuisu register verify SNAPSHOT_ID`` (the kept rows against the event's Merkle root);
``zhuisu compare models``, ``zhuisu compare matches [--model M] [--region C]``;
``zhuisu lead list [--overdue] [--as-of D]``, ``zhuisu lead show LEAD_ID``,
``zhuisu lead stats [--region C] [--as-of D]``; and the leads' moves on the store directly
(like ``zhuisu draft``): ``zhuisu lead raise --match M | --flag F``, ``lead assign LEAD
--unit U --official O --working-days N`` (the deadline: the N-th working day after the
day of 交办 on the Chinese calendar), ``lead verify LEAD --verdict founded|partly|unfounded
--reasons …``, ``lead report``, ``lead review --accepted/--sent-back``, ``lead close
--disposition …``, ``lead open-case LEAD --case-no … --case-type … --title …`` (立案).
Each move takes ``--date`` (its business date, default today) and prints the lead's id,
number and whether it recorded anything.  The importer and every move are recorded as
``cli:<user>``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from cli.adapter import cli_user, open_app, print_json, run, settings
from domain.errors import InvalidInput
from domain.lead import Lead, lead_move, open_lead_case, raise_lead
from domain.official import Official
from domain.region import Unit
from domain.registers import RegisterSnapshot
from exchange.registers import import_register
from inspection.rules.compare import CompareSettings, catalogue
from inspection.rules.records import CHINA_STANDARD_TIME
from inspection.workdays import add_working_days
from projections import compare, leads, runner
from projections.compare.evidence import verify_snapshot
from store.engines import engine_for
from store.settings import utc_now

register_app = typer.Typer(name="register", help="Other departments' registers (比对数据).",
                           no_args_is_help=True)
compare_app = typer.Typer(name="compare", help="Comparison models and matches (大数据比对).",
                          no_args_is_help=True)
lead_app = typer.Typer(name="lead", help="Leads and their disposition (线索处置).",
                       no_args_is_help=True)
app = typer.Typer()
app.add_typer(register_app)
app.add_typer(compare_app)
app.add_typer(lead_app)


def read_models() -> Any:
    url = settings().database_url
    runner.catch_up(url)
    return engine_for(url)


def _date(value: str | None, field: str) -> dt.date:
    if value is None:
        return utc_now().astimezone(CHINA_STANDARD_TIME).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("must be a date YYYY-MM-DD", field=field) from None


@register_app.command("import")
def import_file(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
                department: Annotated[str, typer.Option(help="提供数据的部门")],
                kind: Annotated[str, typer.Option(help="death, payroll, cadre_relatives, "
                                                  "vehicle, property, business, dibao, "
                                                  "disability")],
                as_of: Annotated[str, typer.Option("--as-of", help="数据截止日期 YYYY-MM-DD")],
                confirm: Annotated[bool, typer.Option(help="store it (else a dry run)")]
                = False) -> None:
    """Import a register file as an evidence snapshot (dry run unless --confirm)."""
    zhuisu = open_app()
    try:
        summary = run(lambda: import_register(
            zhuisu, department=department, kind=kind, as_of=_date(as_of, "as_of"),
            data=file.read_bytes(), filename=file.name, imported_by=cli_user(),
            confirm=confirm))
    finally:
        zhuisu.close()
    print_json(summary)


@register_app.command("list")
def list_snapshots(kind: Annotated[str | None, typer.Option()] = None) -> None:
    """The imported snapshots (current ones not superseded)."""
    print_json(run(lambda: compare.list_snapshots(read_models(), kind=kind)))


@register_app.command("verify")
def verify(snapshot_id: str) -> None:
    """A snapshot's kept rows against the Merkle root its event carries (exit 3 if not)."""
    zhuisu = open_app()
    try:
        def check() -> dict:
            snap = zhuisu.load(RegisterSnapshot, UUID(snapshot_id), "snapshot_id")
            return verify_snapshot(engine_for(settings().database_url), str(snap.id),
                                   snap.rows_root)
        found = run(check)
    finally:
        zhuisu.close()
    print_json(found)
    if not found["ok"]:
        raise typer.Exit(3)


@compare_app.command("models")
def models() -> None:
    """The comparison models and the thresholds in force."""
    s = CompareSettings.from_env()
    print_json({"models": catalogue(), "settings": {"vehicle_price_fen": s.vehicle_price_fen,
                                                    "housing_area_m2": s.housing_area_m2}})


@compare_app.command("matches")
def matches(model: Annotated[str | None, typer.Option("--model")] = None,
            region: Annotated[str | None, typer.Option("--region")] = None,
            after: Annotated[str | None, typer.Option()] = None,
            limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """Matches of the comparison models, by match id."""
    print_json(run(lambda: compare.list_matches(read_models(), model_id=model,
                                                region_code=region, after=after, limit=limit)))


@lead_app.command("list")
def list_leads(region: Annotated[str | None, typer.Option("--region")] = None,
               overdue: Annotated[bool, typer.Option("--overdue")] = False,
               as_of: Annotated[str | None, typer.Option("--as-of")] = None,
               limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """Leads (overdue ones on --as-of, default today)."""
    print_json(run(lambda: leads.list_leads(read_models(), as_of=_date(as_of, "as_of"),
                                            region_code=region, overdue_only=overdue,
                                            limit=limit)))


@lead_app.command("show")
def show_lead(lead_id: str, as_of: Annotated[str | None, typer.Option("--as-of")] = None) -> None:
    """A lead and its moves."""
    print_json(run(lambda: leads.get_lead(read_models(), lead_id,
                                          as_of=_date(as_of, "as_of"))))


@lead_app.command("stats")
def stats(region: Annotated[str | None, typer.Option("--region")] = None,
          as_of: Annotated[str | None, typer.Option("--as-of")] = None) -> None:
    """Per unit: leads, 属实率, overdue, cases opened, money recovered."""
    print_json(run(lambda: leads.lead_statistics(read_models(), as_of=_date(as_of, "as_of"),
                                                 region_code=region)))



# the leads' moves ---------------------------------------------------------------------------
DateOpt = Annotated[str | None, typer.Option("--date", help="business date YYYY-MM-DD "
                                             "(default: today, China time)")]


def _write(action: Any) -> None:
    zhuisu = open_app()
    try:
        print_json(run(lambda: action(zhuisu)))
    finally:
        zhuisu.close()


@lead_app.command("raise")
def raise_from(match: Annotated[str | None, typer.Option("--match", help="a match id")] = None,
               flag: Annotated[str | None, typer.Option("--flag", help="a flag id")] = None,
               date: DateOpt = None) -> None:
    """Raise a lead (立线索) from a comparison match or a red flag."""
    if (match is None) == (flag is None):
        raise typer.BadParameter("give --match or --flag (one of them)")
    kind, ref = ("match", match) if match is not None else ("flag", flag)

    def act(zhuisu: Any) -> dict:
        src = leads.lead_source(read_models(), kind, str(ref))
        return raise_lead(zhuisu, source_kind=kind, source_ref=str(ref),
                          effective_date=_date(date, "date"), recorded_by=cli_user(), **src)
    _write(act)


@lead_app.command("assign")
def assign(lead_id: str, unit: Annotated[str, typer.Option("--unit", help="承办单位 code")],
           official: Annotated[str, typer.Option("--official", help="承办人 official id")],
           working_days: Annotated[int, typer.Option("--working-days", min=1, max=250)],
           note: Annotated[str, typer.Option()] = "", date: DateOpt = None) -> None:
    """交办: to a unit and a person, the deadline in working days."""
    def act(zhuisu: Any) -> dict:
        day = _date(date, "date")
        zhuisu.load(Unit, Unit.create_id(unit), "unit_code")
        zhuisu.load(Official, official, "official_id")
        deadline = add_working_days(day, working_days)
        result = lead_move(zhuisu, lead_id, "assign", unit_code=unit, official_id=official,
                           working_days=working_days, deadline=deadline.isoformat(),
                           effective_date=day, note=note, recorded_by=cli_user())
        return {**result, "deadline": deadline.isoformat()}
    _write(act)


@lead_app.command("verify")
def verify_lead(lead_id: str,
                verdict: Annotated[str, typer.Option(help="founded (属实), partly (部分属实), "
                                                     "unfounded (不属实)")],
                reasons: Annotated[str, typer.Option()],
                amount_fen: Annotated[int, typer.Option("--amount-fen", min=0)] = 0,
                date: DateOpt = None) -> None:
    """核实: the verdict with its reasons and the money involved (fen)."""
    _write(lambda zhuisu: lead_move(zhuisu, lead_id, "verify", verdict=verdict,
                                    reasons=reasons, amount_fen=amount_fen,
                                    effective_date=_date(date, "date"), recorded_by=cli_user()))


@lead_app.command("report")
def report(lead_id: str, text: Annotated[str, typer.Option("--text", help="反馈内容")],
           date: DateOpt = None) -> None:
    """反馈 by the unit."""
    _write(lambda zhuisu: lead_move(zhuisu, lead_id, "report", report=text,
                                    effective_date=_date(date, "date"), recorded_by=cli_user()))


@lead_app.command("review")
def review(lead_id: str, opinion: Annotated[str, typer.Option()],
           accepted: Annotated[bool, typer.Option("--accepted/--sent-back")] = True,
           date: DateOpt = None) -> None:
    """审核: accepted, or sent back for a new 核实."""
    _write(lambda zhuisu: lead_move(zhuisu, lead_id, "review", accepted=accepted,
                                    opinion=opinion, effective_date=_date(date, "date"),
                                    recorded_by=cli_user()))


@lead_app.command("close")
def close(lead_id: str,
          disposition: Annotated[str, typer.Option(help="talk_inquiry (谈话函询), "
                                                   "preliminary_check (初步核实), shelved "
                                                   "(暂存待查), concluded (予以了结)")],
          conclusion: Annotated[str, typer.Option()],
          recovered_fen: Annotated[int, typer.Option("--recovered-fen", min=0)] = 0,
          date: DateOpt = None) -> None:
    """处置 by one of the 四类处置 (立案: ``lead open-case``)."""
    _write(lambda zhuisu: lead_move(zhuisu, lead_id, "close", disposition=disposition,
                                    conclusion=conclusion, recovered_fen=recovered_fen,
                                    effective_date=_date(date, "date"), recorded_by=cli_user()))


@lead_app.command("open-case")
def open_case(lead_id: str, case_no: Annotated[str, typer.Option("--case-no")],
              case_type: Annotated[str, typer.Option("--case-type")],
              title: Annotated[str, typer.Option()],
              conclusion: Annotated[str, typer.Option()] = "立案审查",
              date: DateOpt = None) -> None:
    """立案: the case opened with the lead's evidence; the lead closed naming it."""
    def act(zhuisu: Any) -> dict:
        zhuisu.load(Lead, lead_id, "lead_id")
        return open_lead_case(zhuisu, lead_id, case_no=case_no, case_type=case_type,
                              title=title, effective_date=_date(date, "date"),
                              conclusion=conclusion, recorded_by=cli_user())
    _write(act)
