"""People's accounts for the console (检查台): create (password and TOTP secret shown once),
list, disable, unlock; the current code of a demo account."""

from __future__ import annotations

from typing import Annotated

import typer

from access.accounts import Accounts
from access.roles import ApiRole
from access.tables import open_engine
from cli.adapter import open_app, print_json, run, settings
from store.settings import utc_now

app = typer.Typer(name="account", help="People's accounts for the web console (检查台).",
                  no_args_is_help=True)


def _accounts() -> Accounts:
    return Accounts(run(lambda: open_engine(settings().database_url)))


@app.command("create")
def create(username: Annotated[str, typer.Option(help="sign-in name: a–z, 0–9, . _ -")],
           name: Annotated[str, typer.Option(help="the person's name, e.g. 县纪委 王检查")],
           role: Annotated[ApiRole, typer.Option(help="one role, as tokens have")],
           region: Annotated[str | None, typer.Option(
               help="region code of the subtree (default: every region)")] = None) -> None:
    """Make an account; its password and TOTP secret are shown once, here."""
    people = _accounts()
    found = run(lambda: open_app().region(region, "region")) if region else None
    new = run(lambda: people.create(username, name, role, found, created_by="zhuisu account",
                                    now=utc_now()))
    typer.echo(f"account {new.account.username} ({role.value}, "
               f"{region or 'every region'}) created.  Shown once:")
    typer.echo(f"  password: {new.password}")
    typer.echo(f"  TOTP secret: {new.totp_secret}")
    typer.echo(f"  authenticator URI: {new.totp_uri}")


@app.command("list")
def list_accounts() -> None:
    """Every account: user name, name, role, region, disabled, locked until."""
    print_json([{"username": a.username, "name": a.name, "role": a.role.value,
                 "region": a.region_code, "disabled": a.disabled, "demo": a.demo,
                 "locked_until": a.locked_until.isoformat() if a.locked_until else None}
                for a in run(lambda: _accounts().list())])


@app.command("disable")
def disable(username: str) -> None:
    """Disable an account and end its sessions."""
    run(lambda: _accounts().disable(username))
    typer.echo(f"account {username} disabled")


@app.command("unlock")
def unlock(username: str) -> None:
    """Lift a lockout after repeated failed sign-ins."""
    run(lambda: _accounts().unlock(username))
    typer.echo(f"account {username} unlocked")


@app.command("code")
def code(username: str) -> None:
    """The current 6-digit code of a demo account (refused for real accounts)."""
    typer.echo(run(lambda: _accounts().demo_code(username, utc_now())))
