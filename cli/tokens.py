"""Bearer tokens for the HTTP API: create (shown once), list, revoke.

``zhuisu token create --role county_approver --region 522625 --name "县扶贫办 张审批"``
prints the token alone on stdout (so ``TOKEN=$(zhuisu token create …)`` works) and what it
is for on stderr.  Only its SHA-256 is stored; a lost token is revoked and replaced.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.adapter import cli_user, fail, open_app, run, settings
from access.tables import open_engine
from access.roles import ApiRole
from store.settings import utc_now
from access.tokens import TokenRecord, Tokens

app = typer.Typer(name="token", help="Bearer tokens for the HTTP API: create, list, revoke.",
                  no_args_is_help=True)


def open_tokens() -> Tokens:
    s = settings()
    return Tokens(run(lambda: open_engine(s.database_url)))


def jurisdiction(record: TokenRecord) -> str:
    return f"{record.region_level} {record.region_code}" if record.region_code else "all regions"


@app.command()
def create(
    role: Annotated[ApiRole, typer.Option("--role", help="what the holder may do "
                                          "(the table in access/roles.py)")],
    name: Annotated[str, typer.Option("--name", help="who holds it (shown in logs and the "
                                      "access log)")],
    region: Annotated[str | None, typer.Option("--region", help="region code: the token acts "
                                               "in this region's subtree only")] = None,
    all_regions: Annotated[bool, typer.Option("--all-regions", help="no regional limit "
                                              "(instead of --region)")] = False,
) -> None:
    """Create a token and print it once."""
    if (region is None) == (not all_regions):
        fail("give exactly one of --region CODE or --all-regions")
    tokens = open_tokens()
    where = None
    if region is not None:
        zhuisu = open_app()
        where = run(lambda: zhuisu.region(region, "region"))
        zhuisu.close()
    token, record = run(lambda: tokens.create(name=name, role=role, region=where,
                                              created_by=cli_user(), now=utc_now()))
    typer.echo(token)
    typer.echo(f"token {record.id} for {record.name}: role {record.role.value}, "
               f"{jurisdiction(record)}. It is shown only this once: store it now.", err=True)


@app.command("list")
def list_tokens(
    include_revoked: Annotated[bool, typer.Option("--all", help="revoked ones too")] = False,
) -> None:
    """List tokens (never the tokens themselves: their ids, names, roles, jurisdictions)."""
    tokens = open_tokens()
    for r in run(lambda: tokens.list(include_revoked)):
        revoked = f"  revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else ""
        typer.echo(f"{r.id}  {r.role.value:<17}  {jurisdiction(r):<22}  "
                   f"{r.created_at:%Y-%m-%d %H:%M}  {r.name}{revoked}")


@app.command()
def revoke(token_id: Annotated[str, typer.Argument(help="the token's id (zhuisu token list)")]
           ) -> None:
    """Revoke a token: it stops working at once."""
    tokens = open_tokens()
    record = run(lambda: tokens.revoke(token_id, utc_now(), by=cli_user()))
    typer.echo(f"revoked token {record.id} ({record.name})")
