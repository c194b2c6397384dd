"""``zhuisu batch``: payment batches (支付令 + 分户清单) and their reconciliation (对账) from
the read models (``projections.batches``), and a row's offline proof.

    zhuisu batch list [--account ID] [--region CODE] [--state pending|credited|returned|reissued]
    zhuisu batch show BATCH_ID [--offset N --limit N]
    zhuisu batch reconcile BATCH_ID        the counts and fen: 下达 / 入账 / 退回 / 重发
    zhuisu batch proof BATCH_ID ROW [--out FILE]   a zhuisu-batch-row/v1 bundle

The read models are caught up with the log first; a proof needs a checkpoint covering
both events (``zhuisu checkpoint``).  Check a bundle with ``zhuisu verify-proof``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from audit.batch_proofs import batch_row_bundle
from cli.adapter import UserError, fail, print_json, run, settings
from projections import batches as bt
from projections import runner
from store.engines import engine_for

app = typer.Typer(name="batch", help="payment batches (支付令) and their reconciliation",
                  no_args_is_help=True)


def read_models() -> Any:
    url = settings().database_url
    runner.catch_up(url)
    return engine_for(url)


def _region(db: Any, code: str) -> tuple[str, str]:
    from sqlalchemy import select

    from projections.register import regions

    with db.connect() as conn:
        level = conn.execute(select(regions.c.level).where(regions.c.code == code)).scalar()
    if level is None:
        raise UserError(f"no region {code}")
    return level, code


@app.command("list")
def list_(account: Annotated[str | None, typer.Option(help="an account id")] = None,
          region: Annotated[str | None, typer.Option(help="a region code: its subtree")] = None,
          state: Annotated[str | None, typer.Option(help=", ".join(bt.STATES))] = None,
          limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
          offset: Annotated[int, typer.Option(min=0)] = 0) -> None:
    """Batches newest first, with their reconciliation."""
    if state is not None and state not in bt.STATES:
        fail(f"--state must be one of {list(bt.STATES)}")
    db = read_models()

    def listed() -> dict:
        level, code = _region(db, region) if region else (None, None)
        items, next_offset = bt.list_batches(db, account_id=account, level=level, code=code,
                                             state=state, limit=limit, offset=offset)
        return {"items": items, "next_offset": next_offset}
    print_json(run(listed))


@app.command()
def show(batch_id: str, limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
         offset: Annotated[int, typer.Option(min=0)] = 0) -> None:
    """A batch: manifest, signers, bank return, reconciliation, a page of rows."""
    db = read_models()
    print_json(run(lambda: bt.batch_view(db, batch_id, limit=limit, offset=offset)))


@app.command()
def reconcile(batch_id: str) -> None:
    """下达 / 入账 / 退回 / 重发 of a batch: rows and fen (入账 null while pending)."""
    db = read_models()
    print_json(run(lambda: bt.reconciliation(bt.get_batch(db, batch_id)) | {
        "batch_id": batch_id}))


@app.command()
def proof(batch_id: str, row: int,
          out: Annotated[Path | None, typer.Option(help="write the bundle here")] = None,
          checkpoint_id: Annotated[int | None, typer.Option(help="default: the latest")] = None
          ) -> None:
    """A row's proof bundle (zhuisu-batch-row/v1), to check with zhuisu verify-proof."""
    s = settings()
    db = read_models()

    def bundle() -> dict:
        b, r = bt.batch_row(db, batch_id, row)
        rows = [{k: x[k] for k in ("movement_id", "payee_kind", "payee_id", "amount_fen",
                                   "bank_account_hash", "holder_id_hash", "source_row",
                                   "reissue_of")} | {"project_id": None}
                for x in bt.batch_all_rows(db, b["batch_id"])]
        return batch_row_bundle(s, manifest_position=b["log_position"],
                                row_position=r["log_position"], rows_as_signed=rows,
                                index=row, checkpoint_id=checkpoint_id)
    print_json(run(bundle), out)
    if out is not None:
        typer.echo(f"wrote {out}", err=True)
