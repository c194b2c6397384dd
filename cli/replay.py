"""``zhuisu replay``: a village or an aggregate as it stood at a past date or log position.

    zhuisu replay --village 522625100001 --as-of 2025-06-30 --known   # what the reviewer saw
    zhuisu replay --village 522625100001 --as-of 2025-06-30           # effective on that day
    zhuisu replay --village 522625100001 --position 1234
    zhuisu replay --aggregate <uuid> --position 1234 | --as-of 2025-06-30 [--known]

``--known``: only what was recorded by the end of that day (China Standard Time);
``--effective`` (the default for a date): everything recorded since too, but statuses and
money as of that business date.  The meaning of each is in ``projections/replay.py``.
The answer is JSON on stdout; which point of the log it shows goes to stderr.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

import typer

from cli.adapter import fail, open_app, print_json, run
from projections.aggregates import aggregate_view
from projections import replay as rp

app = typer.Typer()


@app.command()
def replay(
    village: Annotated[str | None, typer.Option(help="a village's region code")] = None,
    aggregate: Annotated[str | None, typer.Option(help="or an aggregate's UUID")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="a date, YYYY-MM-DD")] = None,
    known: Annotated[bool, typer.Option("--known", help="as recorded by the end of that day")]
    = False,
    effective: Annotated[bool, typer.Option("--effective", help="as effective on that "
                                            "business date, known now (the default)")] = False,
    position: Annotated[int | None, typer.Option(help="the log up to this notification id "
                                                 "(with --as-of: effective on the date, as "
                                                 "known at this position)")] = None,
) -> None:
    """Print a village (register counts, incidence, households and their status, the
    balances of its accounts) or an aggregate as it stood at a past date or position."""
    if (village is None) == (aggregate is None):
        fail("give --village CODE or --aggregate UUID (one of them)")
    if known and effective:
        fail("--known and --effective exclude each other")
    if (known or effective) and as_of is None:
        fail("--known and --effective qualify a date: give --as-of YYYY-MM-DD")
    day = _date(as_of) if as_of is not None else None
    if day is None and position is None:
        fail("give --as-of YYYY-MM-DD or --position N")
    subject = _uuid(aggregate) if aggregate is not None else None
    zhuisu = open_app()
    mode = rp.Mode.KNOWN if known else rp.Mode.EFFECTIVE
    at = run(lambda: rp.moment(zhuisu, as_of=day, mode=mode, position=position))
    typer.echo(_where(at), err=True)
    if subject is None:
        print_json(run(lambda: rp.village_as_of(zhuisu, village, at)))
    else:
        print_json(run(lambda: aggregate_view(rp.aggregate_as_of(zhuisu, subject, at))))


def _where(at: rp.Moment) -> str:
    if at.mode == "known":
        return (f"as known on {at.on} (recorded by {at.recorded_by:%Y-%m-%d %H:%M:%S} UTC): "
                f"log position {at.position} of {at.head}")
    if at.mode == "effective":
        return (f"effective on {at.on}, as known at log position {at.position} of "
                f"{at.head}")
    return f"at log position {at.position} of {at.head}"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(f"--as-of: expected a date YYYY-MM-DD, got {text!r}")


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        fail(f"--aggregate: expected an aggregate's UUID, got {text!r}")
