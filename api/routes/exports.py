"""台账: the ledgers offices file, as .xlsx or CSV (``exchange``).

``GET /exports/{ledger}`` — ``flags`` (问题线索台账), ``rectification`` (整改台账),
``funds`` (扶贫资金总台账), ``payments`` (发放清册), ``household`` (一户一档) — for a
region of the caller's jurisdiction (default: the token's own), an account (发放清册) or
a household (一户一档, by id or 户编号).  The subject asked about is checked against the
jurisdiction (403 ``OutsideJurisdiction``) before anything is read; ID and bank numbers
are shown masked for the caller's role; every subject the ledger shows — each flag, case,
account, household and the region whose figures it sums — is recorded in the access log.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response

from access.roles import check_covers
from api.deps import App, Reader, record_reads, region_within
from api.routes.traces import ReadModels
from api.schemas import READ_PROBLEMS, IsoDate
from exchange import layout
from exchange.ledgers import LEDGERS, build
from exchange.sources import Context, Params

router = APIRouter(tags=["台账 exports"])

Ledger = Literal["flags", "rectification", "funds", "payments", "household"]
EXPORT_RESPONSES = {
    200: {"description": "the ledger as a file",
          "content": {layout.FORMATS["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
                      "text/csv": {"schema": {"type": "string"}}}},
    **READ_PROBLEMS}


@router.get("/exports/{ledger}", response_class=Response, responses=EXPORT_RESPONSES)
def export_ledger(
        ledger: Annotated[Ledger, Path(description="; ".join(
            f"{k}: {s.title} ({s.asks})" for k, s in LEDGERS.items()))],
        request: Request, reader: Reader, app: App, db: ReadModels,
        region: Annotated[str | None, Query(min_length=1, max_length=32, description=(
            "the region code the ledger is for (default: the token's own)"))] = None,
        format: Annotated[Literal["xlsx", "csv"], Query(  # noqa: A002
            description="xlsx (titled, 合计, for people) or csv (UTF-8 with BOM, the same "
                        "columns plus raw fen, for machines)")] = "xlsx",
        date_from: Annotated[IsoDate | None, Query(description="business dates from "
                                                               "(inclusive)")] = None,
        date_to: Annotated[IsoDate | None, Query(description="business dates to "
                                                             "(inclusive)")] = None,
        status: Annotated[Literal["standing", "withdrawn", "all"], Query(
            description="问题线索台账: which flags")] = "standing",
        as_of: Annotated[IsoDate | None, Query(description=(
            "整改台账: judge overdue items on this date (default: the log clock)"))] = None,
        account: Annotated[str | None, Query(min_length=1, max_length=64, description=(
            "发放清册: one account's payments (its id)"))] = None,
        household: Annotated[str | None, Query(min_length=1, max_length=64, description=(
            "一户一档: the household's id or 户编号"))] = None) -> Response:
    """A ledger in the offices' own layout: Chinese headers, a title row, 填报单位 and
    填报日期, a 合计 row, amounts in 元 (two decimals, from fen), ID and bank numbers as
    masked text; or its CSV."""
    if region is not None:
        region_within(reader, app, region, "region")
    elif ledger != "household" and account is None:
        region = reader.region_code
    context = Context(db, app, role=reader.role.value,
                      covers=lambda path, what, field: check_covers(reader, path, what, field))
    made = build(ledger, context, Params(region=region, date_from=date_from, date_to=date_to,
                                         status=status, as_of=as_of, account=account,
                                         household=household))
    record_reads(request, reader, made.shown)
    name = made.filename(format)
    return Response(layout.render(made, format), media_type=layout.FORMATS[format], headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"})
