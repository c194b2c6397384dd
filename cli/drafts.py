"""The signing queue (签字队列) from the command line, on the store directly.

Like ``zhuisu submit``, these commands work on the configured store itself
(``ZHUISU_DATABASE_URL``), not through the HTTP API; the rules are ``access.drafts``'s:

    zhuisu draft submit cmd.json      # a command envelope without signatures, or with the preparer's
    zhuisu draft list [--state open] [--waiting-for OFFICIAL_ID] [--role reviewer]
    zhuisu draft show ID
    zhuisu draft withdraw ID          # only whoever submitted it
    zhuisu sign --draft ID --key me.key --official OFFICIAL_ID --role reviewer

``sign --draft`` takes the exact bytes to sign from the draft, signs them here with the
key file and adds only the signature: the private key never leaves this machine.  The last
signature the step needs runs the command (``Zhuisu.execute``, as ``POST /commands``).
Each action is in the access log under ``cli:<operating-system user>`` with the role that
submits the step (``access.roles.STEPS_BY_ROLE``).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from access.drafts import STATES, Draft, Drafts, Via
from access.roles import STEPS_BY_ROLE, ApiRole, Principal
from access.tables import open_engine
from cli.adapter import cli_user, fail, print_json, read_json, run, settings
from domain.signing import Role, SigningKey, b64
from store.settings import build_app

app = typer.Typer(name="draft", help="The signing queue (签字队列): submit a step to be "
                  "signed, list, show, withdraw; sign with `zhuisu sign --draft ID`.",
                  no_args_is_help=True)


def open_queue() -> Drafts:
    s = settings()
    zhuisu = run(lambda: build_app(s))
    engine = run(lambda: open_engine(s.database_url))
    return Drafts(engine, zhuisu)


def operator(step: str) -> Principal:
    """The CLI's caller in the access log: the OS user, in the role that submits ``step``."""
    role = next((r for r, steps in STEPS_BY_ROLE.items() if step in steps), ApiRole.ADMIN)
    return Principal(cli_user(), cli_user(), role, None, None)


def via(verb: str) -> Via:
    return Via("CLI", f"zhuisu {verb}")


def finish(draft: Draft) -> None:
    """Print the draft; a refused execution also as one line on stderr, exit 2."""
    print_json(draft.as_dict())
    if draft.state == "refused" and draft.problem:
        p = draft.problem
        where = f" [{p.get('field')}]" if p.get("field") else ""
        typer.echo(f"error: {p['rule']}{where}: {p['detail']}", err=True)
        raise typer.Exit(2)


@app.command()
def submit(command_json: Annotated[str, typer.Argument(
        help="command envelope: step, subject, content (rows), no signature or the "
             "preparer's ('-' for stdin)")]) -> None:
    """Submit a step to be signed; print the draft (its id, the roles still missing).

    Clear ID numbers are not taken: ``zhuisu sign`` (which signs as preparer) replaces
    them by their keyed hash first."""
    command = run(lambda: read_json(command_json))
    if not isinstance(command, dict) or not isinstance(command.get("content"), dict):
        fail("the command must be a JSON object with step, content (and subject)")
    extra = sorted(set(command) - {"step", "subject", "content", "rows", "signatures"})
    if extra:
        fail(f"the command has no field {extra[0]}")
    signatures = command.get("signatures") or []
    if not isinstance(signatures, list) or len(signatures) > 1:
        fail("a draft is submitted without signatures or with the preparer's only; the "
             "others sign it with zhuisu sign --draft ID")
    members = command["content"].get("members")
    if "bank_account" in command["content"] or any(
            isinstance(m, dict) and "id_number" in m for m in (
                members if isinstance(members, list) else [])):
        fail("the content holds a clear ID or bank account number: sign it as preparer "
             "with zhuisu sign (which hashes them) and submit the signed command")
    queue = open_queue()
    step = str(command.get("step"))
    draft = run(lambda: queue.submit(
        operator(step), via("draft submit"), step=command.get("step"),
        subject=command.get("subject"), content=command["content"], rows=command.get("rows"),
        signature=signatures[0] if signatures else None))
    finish(draft)


@app.command("list")
def list_drafts(
    state: Annotated[str | None, typer.Option("--state", help=f"one of {', '.join(STATES)}")
                     ] = None,
    waiting_for: Annotated[str | None, typer.Option(
        "--waiting-for", help="an official's id: open drafts that official has not signed")
                           ] = None,
    role: Annotated[Role | None, typer.Option("--role", help="open drafts missing this role")
                    ] = None,
) -> None:
    """List drafts, newest first: id, state, step, missing roles, expiry."""
    if state is not None and state not in STATES:
        fail(f"--state must be one of {', '.join(STATES)}")
    queue = open_queue()
    everyone = Principal(cli_user(), cli_user(), ApiRole.ADMIN, None, None)
    found = run(lambda: queue.list(everyone, state=state, waiting_for=waiting_for,
                                   role=role.value if role else None, limit=10_000))
    for d in found:
        missing = ",".join(d.missing_roles) or "-"
        typer.echo(f"{d.id}  {d.state:<9}  {d.step:<34}  missing {missing:<26}  "
                   f"expires {d.expires_at:%Y-%m-%d %H:%M}  {d.created_by}")


@app.command()
def show(draft_id: Annotated[str, typer.Argument(help="the draft's id")]) -> None:
    """Print a draft: content, signatures, missing roles, state, result or refusal."""
    queue = open_queue()
    print_json(run(lambda: queue.get(draft_id)).as_dict())


@app.command()
def withdraw(draft_id: Annotated[str, typer.Argument(help="the draft's id")]) -> None:
    """Withdraw an open draft you submitted from this account."""
    queue = open_queue()
    draft = run(lambda: queue.get(draft_id))
    finish(run(lambda: queue.withdraw(operator(draft.step), via("draft withdraw"), draft_id)))


def sign_draft(draft_id: str, key: SigningKey, official: str, role: Role) -> None:
    """``zhuisu sign --draft`` (``cli.signing``, which loads the key file): sign the
    draft's message here, add only the signature."""
    try:
        official_id = str(UUID(official))
    except ValueError:
        fail(f"--official must be the official's UUID, not {official!r}")
    queue = open_queue()
    draft = run(lambda: queue.get(draft_id))

    def signed() -> dict[str, Any]:
        message = queue.message(draft_id, official_id, role.value, key.key_id)
        private = Ed25519PrivateKey.from_private_bytes(key.private_bytes())
        signature = private.sign(message)  # the key stays in this process
        return {"official_id": official_id, "role": role.value, "key_id": key.key_id,
                "signature": b64(signature)}

    signature = run(signed)
    finish(run(lambda: queue.add_signature(operator(draft.step), via("sign --draft"),
                                           draft_id, signature)))


__all__ = ["app", "sign_draft"]
