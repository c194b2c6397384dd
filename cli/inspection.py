"""Discipline inspection (纪检监察) at the terminal: flags, a case, reports, 三率一度.

``zhuisu flags`` (``flags recompute --rule R [--region C]``: one rule after a threshold
change), ``zhuisu case show``, ``zhuisu report case|county``, ``zhuisu metrics``:
read the read models of the store in ``ZHUISU_DATABASE_URL`` (caught up with the log
first), as the HTTP routes do.  Bad input exits non-zero with ``error: <rule> [field]``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.adapter import fail, open_app, print_json, run, settings
from exchange import layout, reports
from exchange.sources import Context
from projections.read_side import ReadSide
from domain.errors import InvalidInput
from projections import case_queries, runner
from inspection.assessment import RELAPSE_WINDOW_DAYS
from projections.metrics import metrics
from store.engines import engine_for

app = typer.Typer()
case_app = typer.Typer(name="case", help="Cases of discipline inspection (纪检监察).",
                       no_args_is_help=True)
report_app = typer.Typer(name="report", help="Inspection reports as .xlsx (the offices' "
                         "layout) or CSV (English field names, integer fen).",
                         no_args_is_help=True)
app.add_typer(case_app)
app.add_typer(report_app)

FormatOption = Annotated[str, typer.Option("--format", help="xlsx or csv")]
OutOption = Annotated[Path, typer.Option("--out", help="the file to write",
                                         dir_okay=False, writable=True)]
AsOfOption = Annotated[str | None, typer.Option("--as-of", help="judge rectification items "
                                                "as of this date (YYYY-MM-DD; default: the "
                                                "log clock)")]


def read_models() -> Any:
    url = settings().database_url
    runner.catch_up(url)
    return engine_for(url)


def _date(value: str | None, field: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("must be a date YYYY-MM-DD", field=field) from None


def _format(value: str) -> str:
    if value not in layout.FORMATS:
        raise InvalidInput(f"must be one of {sorted(layout.FORMATS)}", field="format")
    return value


flags_app = typer.Typer(name="flags", invoke_without_command=True)
app.add_typer(flags_app)


@flags_app.callback()
def flags(ctx: typer.Context,
          rule: Annotated[str | None, typer.Option("--rule", help="only this rule")] = None,
          region: Annotated[str | None, typer.Option("--region", help="only within this "
                                                     "region's subtree")] = None,
          after: Annotated[str | None, typer.Option(help="flags after this flag id")] = None,
          limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """Standing red flags (问题线索), by flag id; ``flags recompute``: one rule's flags
    again after a threshold (``ZHUISU_FLAG_*``) changed."""
    if ctx.invoked_subcommand is not None:
        return
    read = ReadSide(read_models())
    if not read.flags_kept():
        fail("the flags read model (projections.flags) is not installed")
    print_json(run(lambda: read.list_flags(rule_id=rule, region_code=region, after=after,
                                           limit=limit)))


@flags_app.command("recompute")
def recompute_flags(
        rule: Annotated[str | None, typer.Option("--rule", help="the rule whose threshold "
                                                 "changed, e.g. IDLE_FUNDS")] = None,
        region: Annotated[str | None, typer.Option("--region", help="only this region's "
                                                   "subtree (a county)")] = None,
        check: Annotated[bool, typer.Option("--check", help="only report which thresholds "
                                            "changed since the flags were computed")] = False,
) -> None:
    """Recompute one rule's flags with the current thresholds (only that rule, in one
    transaction: readers see the old flags or the new ones), or ``--check`` which
    thresholds changed since the flags were computed and which rules they affect."""
    from projections import flag_recompute

    url = settings().database_url
    if check or rule is None:
        print_json(run(lambda: flag_recompute.check(engine_for(url))))
        return
    print_json(run(lambda: flag_recompute.recompute(url, rule, region=region)))


@case_app.command("show")
def show_case(case_no: str, as_of: AsOfOption = None) -> None:
    """A case: facts, persons (一案双查), evidence, findings, 问责, 追回, 整改."""
    print_json(run(lambda: case_queries.case_view(read_models(), case_no,
                                                  as_of=_date(as_of, "as_of"))))


def _write_report(out: Path, fmt: str, make: Any) -> None:
    """Write the report ``make(context)`` makes, as ``fmt``; the command line reads as the
    store's operator (ID and bank numbers masked as for an inspector)."""
    zhuisu = open_app()
    try:
        def write() -> None:
            chosen = _format(fmt)
            url = settings().database_url
            runner.catch_up(url)
            out.write_bytes(make(Context(engine_for(url), zhuisu)).render(chosen))

        run(write)
    finally:
        zhuisu.close()
    typer.echo(f"wrote {out}", err=True)


@report_app.command("case")
def report_case(case_no: str, out: OutOption, format: FormatOption = "xlsx",  # noqa: A002
                as_of: AsOfOption = None) -> None:
    """The inspection report of a case."""
    _write_report(out, format, lambda context: reports.case_report(
        context, case_no, as_of=_date(as_of, "as_of")))


@report_app.command("county")
def report_county(code: str, out: OutOption, format: FormatOption = "xlsx",  # noqa: A002
                  year: Annotated[int | None, typer.Option(help="for 三率一度 (default: the "
                                                           "year of the log clock)")] = None,
                  as_of: AsOfOption = None) -> None:
    """A county's inspection summary."""
    _write_report(out, format, lambda context: reports.county_report(
        context, code, year=year, as_of=_date(as_of, "as_of")))


@app.command("metrics")
def show_metrics(region: str, year: Annotated[int, typer.Option(help="the assessment year")],
                 relapse_window_days: Annotated[int, typer.Option(min=0)] = RELAPSE_WINDOW_DAYS
                 ) -> None:
    """三率一度 of a region's subtree in a year, and of each child region."""
    print_json(run(lambda: metrics(read_models(), region, year,
                                   relapse_window_days=relapse_window_days)))
