"""``zhuisu id KIND CODE``: the id of an aggregate known by a code, computed offline.

The derivation is published (``projections.aggregates.aggregate_id``, ``GET /ids``):
``uuid5(uuid5(NAMESPACE_URL, "https://zhuisu.example/ids"), "{kind}:{code}")``.  A creation
step's subject is such an id, so a client learns it before the aggregate exists; ``zhuisu
sign`` fills it in by itself for a creation step sent without a subject.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.adapter import print_json, run
from projections.aggregates import ID_KINDS, aggregate_id

app = typer.Typer()


@app.command(name="id")
def id_of(
    kind: Annotated[str, typer.Argument(help=f"one of {', '.join(ID_KINDS)}")],
    code: Annotated[str, typer.Argument(help="its code (an account's: REGION/FUND_SOURCE)")],
    explain: Annotated[bool, typer.Option(
        "--explain", help="print the derivation too, as JSON")] = False,
) -> None:
    """Print the id of the aggregate of KIND known by CODE (it need not exist yet)."""
    found = run(lambda: aggregate_id(kind, code))
    if explain:
        print_json(found)
    else:
        typer.echo(found["id"])
