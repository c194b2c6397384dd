"""Payment batches (支付令 + 分户清单), their bank returns (回盘) and roster imports (花名册):
the reconciliation read model (``projections.batches``) and each row's proof.

- ``GET /batches``: batches newest first, within an account, a region subtree (default:
  the token's jurisdiction) and a state (pending, credited, returned, reissued);
- ``GET /batches/{batch_id}``: the manifest, its signers and the bank return's with names
  and positions (谁签字谁负责), the reconciliation (下达 / 入账 / 退回 / 重发, rows and fen)
  and a page of rows with their state;
- ``GET /batches/{batch_id}/rows/{row}/proof``: a self-contained ``zhuisu-batch-row/v1``
  bundle (``audit.batch_proofs``): the row as signed, its Merkle path to the manifest's
  ``rows_root``, the manifest's signed content and signatures, and both events'
  inclusion proofs under the latest checkpoint; ``zhuisu verify-proof`` checks it offline;
- ``GET /rosters/{import_id}``: a roster import: file, SHA-256, root, signers, households.

A batch lies where its account does (the account's region path): a token must cover it;
each account and payee household shown is recorded in the access log.  Card fields are
the keyed hashes the batch was signed with (``bank_account_hash``, ``holder_id_hash``),
shown as ``GET /households/{id}`` shows members' hashes: never a number.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from access.reads import Read
from access.roles import check_covers
from api.deps import (
    App,
    Paging,
    Reader,
    RegionFilter,
    list_scope,
    payee_reads,
    reads_of,
    record_reads,
)
from api.routes.log import Audit
from api.routes.traces import ReadModels
from api.schemas import READ_PROBLEMS
from audit.batch_proofs import batch_row_bundle
from domain.fund_account import FundAccount
from domain.household import Household
from projections import batches as bt

router = APIRouter(tags=["batches"], responses=READ_PROBLEMS)

State = enum.Enum("State", {s: s for s in bt.STATES}, type=str)  # type: ignore[misc]
BatchId = Annotated[str, Path(min_length=1, max_length=64,
                              description="the batch's id (as in its signed manifest)")]


def _account(app: Any, account_id: str, field: str) -> FundAccount:
    return app.load(FundAccount, account_id, field)


def _covered(request: Request, reader: Any, app: Any, b: dict, field: str) -> FundAccount:
    account = _account(app, b["account_id"], field)
    check_covers(reader, account.region_path, f"batch {b['batch_id']}", field)
    record_reads(request, reader, [Read("account", str(account.id), dict(account.region_path))])
    return account


@router.get("/batches")
def list_batches(request: Request, reader: Reader, app: App, db: ReadModels, paging: Paging,
                 region: RegionFilter = None,
                 account: Annotated[str | None, Query(min_length=1, max_length=64,
                                                      description="an account id")] = None,
                 state: Annotated[State | None, Query(description="pending, credited, "
                                                      "returned or reissued")] = None) -> Any:
    """Batches newest first with their reconciliation, within an account or a region."""
    chosen = state.value if state else None
    if account:
        acc = _account(app, account, "account")
        check_covers(reader, acc.region_path, f"account {acc.id}", "account")
        items, next_offset = bt.list_batches(db, account_id=str(acc.id), state=chosen,
                                             limit=paging.limit, offset=paging.offset)
    else:
        level, code = list_scope(reader, app, region)
        items, next_offset = bt.list_batches(db, level=level, code=code, state=chosen,
                                             limit=paging.limit, offset=paging.offset)
    accounts = {i["account_id"] for i in items}
    record_reads(request, reader, [Read("account", a, dict(_account(app, a, "account")
                                                          .region_path)) for a in accounts])
    return {"items": items, "limit": paging.limit, "offset": paging.offset,
            "next_offset": next_offset}


@router.get("/batches/{batch_id}")
def get_batch(batch_id: BatchId, request: Request, reader: Reader, app: App, db: ReadModels,
              paging: Paging) -> Any:
    """The manifest, signers, bank return, reconciliation and a page of rows."""
    _covered(request, reader, app, bt.get_batch(db, batch_id), "batch_id")
    view = bt.batch_view(db, batch_id, limit=paging.limit, offset=paging.offset)
    record_reads(request, reader, payee_reads(app, view["rows"]))
    return view


@router.get("/batches/{batch_id}/rows/{row}/proof")
def row_proof(batch_id: BatchId, request: Request, reader: Reader, app: App, db: ReadModels,
              audit: Audit,
              row: Annotated[int, Path(ge=0, le=10**7, description="the row's index")],
              checkpoint_id: Annotated[int | None, Query(ge=1, le=2**62, description=
                                       "default: the latest")] = None) -> Any:
    """A row's proof bundle (``zhuisu-batch-row/v1``), to check offline with
    ``zhuisu verify-proof BUNDLE --key VKEY [--officials FILE]``."""
    b, r = bt.batch_row(db, batch_id, row)
    _covered(request, reader, app, b, "batch_id")
    record_reads(request, reader, payee_reads(app, [r]))
    rows = [{k: x[k] for k in ("movement_id", "payee_kind", "payee_id", "amount_fen",
                               "bank_account_hash", "holder_id_hash", "source_row",
                               "reissue_of")} | {"project_id": None}
            for x in bt.batch_all_rows(db, b["batch_id"])]
    return batch_row_bundle(audit, manifest_position=b["log_position"],
                            row_position=r["log_position"], rows_as_signed=rows, index=row,
                            checkpoint_id=checkpoint_id)


@router.get("/rosters/{import_id}")
def get_roster(import_id: BatchId, request: Request, reader: Reader, app: App,
               db: ReadModels, paging: Paging) -> Any:
    """A roster import (花名册): its file, SHA-256, rows root, signers and households."""
    view = bt.roster_view(db, import_id, limit=paging.limit, offset=paging.offset)
    check_covers(reader, view["manifest"]["region_path"], f"roster import {import_id}",
                 "import_id")
    record_reads(request, reader, reads_of(app, Household,
                                           [h["household_id"] for h in view["households"]]))
    return view
