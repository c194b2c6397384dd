"""Working on the store directly: submit a signed command, show a household or account."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer

from cli.adapter import fail, open_app, print_json, read_json, run
from projections.aggregates import account_view, household_view
from domain.fund_account import FundAccount
from domain.household import Household

app = typer.Typer()


@app.command()
def submit(command_json: Annotated[str, typer.Argument(
        help="signed command ('-' for stdin)")]) -> None:
    """Run a signed command against the configured store and print the result."""
    command = run(lambda: read_json(command_json))
    if not isinstance(command, dict):
        fail("the command must be a JSON object")
    zhuisu = open_app()
    print_json(run(lambda: zhuisu.execute(command)))


@app.command("show-household")
def show_household(id_or_code: Annotated[str, typer.Argument(
        help="household UUID or code")]) -> None:
    """Print a household, its status and its signed events, as JSON."""
    zhuisu = open_app()
    try:
        hid: UUID = UUID(id_or_code)
    except ValueError:
        hid = Household.create_id(id_or_code)
    print_json(run(lambda: household_view(zhuisu, zhuisu.load(Household, hid, "id_or_code"))))


@app.command("show-account")
def show_account(account: Annotated[str, typer.Argument(
        help="account UUID, or REGION/FUND_SOURCE such as K/central")]) -> None:
    """Print a fund account, its balances and its signed events, as JSON."""
    zhuisu = open_app()
    try:
        aid: UUID = UUID(account)
    except ValueError:
        region, _, source = account.partition("/")
        aid = FundAccount.create_id(region, source)
    print_json(run(lambda: account_view(zhuisu, zhuisu.load(FundAccount, aid, "account"))))
