"""台账 at the terminal: ``zhuisu export LEDGER --region CODE --format xlsx --out FILE``.

The ledgers of ``exchange`` — ``flags`` (问题线索台账), ``rectification`` (整改台账),
``funds`` (扶贫资金总台账), ``payments`` (发放清册), ``household`` (一户一档) — from the read
models of the store in ``ZHUISU_DATABASE_URL`` (caught up with the log first), as the
HTTP route ``GET /exports/{ledger}`` makes them.  The command line is the store's
operator: it reads every region, and ID and bank numbers are masked as for an inspector.
Bad input exits non-zero with ``error: <rule> [field]``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from cli.adapter import open_app, run
from domain.errors import InvalidInput
from exchange import layout
from exchange.ledgers import LEDGERS, build
from exchange.sources import Context, Params
from projections import runner
from store.engines import engine_for
from store.urls import database_url_of

app = typer.Typer()


def _date(value: str | None, field: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("must be a date YYYY-MM-DD", field=field) from None


@app.command("export")
def export(
        ledger: Annotated[str, typer.Argument(help="; ".join(
            f"{k}: {s.title} ({s.asks})" for k, s in LEDGERS.items()))],
        out: Annotated[Path, typer.Option("--out", help="the file to write", dir_okay=False,
                                          writable=True)],
        region: Annotated[str | None, typer.Option("--region", help="the region code the "
                                                   "ledger is for")] = None,
        format: Annotated[str, typer.Option("--format", help="xlsx or csv")] = "xlsx",  # noqa: A002
        date_from: Annotated[str | None, typer.Option("--from", help="business dates from "
                                                      "(YYYY-MM-DD, inclusive)")] = None,
        date_to: Annotated[str | None, typer.Option("--to", help="business dates to "
                                                    "(YYYY-MM-DD, inclusive)")] = None,
        status: Annotated[str, typer.Option(help="问题线索台账: standing, withdrawn or all")
                          ] = "standing",
        as_of: Annotated[str | None, typer.Option("--as-of", help="整改台账: judge overdue "
                                                  "items on this date (YYYY-MM-DD)")] = None,
        account: Annotated[str | None, typer.Option(help="发放清册: one account's id")] = None,
        household: Annotated[str | None, typer.Option(help="一户一档: the household's id or "
                                                      "户编号")] = None) -> None:
    """Write a ledger (台账) in the offices' layout (.xlsx) or as CSV."""
    zhuisu = open_app()

    def write() -> None:
        if format not in layout.FORMATS:
            raise InvalidInput(f"must be one of {sorted(layout.FORMATS)}", field="format")
        params = Params(region=region, date_from=_date(date_from, "date_from"),
                        date_to=_date(date_to, "date_to"), status=status,
                        as_of=_date(as_of, "as_of"), account=account, household=household)
        runner.catch_up(zhuisu)
        made = build(ledger, Context(engine_for(database_url_of(zhuisu)), zhuisu), params)
        out.write_bytes(layout.render(made, format))
        rows = sum(len(s.rows) for s in made.sheets if s.machine)
        typer.echo(f"wrote {out}: {made.title}, {made.unit}, {rows} rows", err=True)

    try:
        run(write)
    finally:
        zhuisu.close()
