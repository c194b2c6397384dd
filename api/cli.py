"""The ``zhuisu`` command line: serve, demo data, and an official's own key and signature.

Commands are adapters like the HTTP routes: parse, call one verb, print.  A refusal
prints ``error: <rule> [field]: message`` (``api.problems``) and exits non-zero; user
errors never print a traceback.  Exit codes: 0 done, 1 bad input or environment,
2 refused by a domain rule or a concurrent write (and usage errors, as usual).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlparse
from uuid import UUID

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import PersistenceError

from api.logging import bind_request, configure_logging
from api.problems import problem_from
from api.settings import Settings, build_app
from api.views import account_view, household_view
from domain.application import Zhuisu
from domain.fund_account import FundAccount
from domain.household import Household
from domain.identity import hash_id_number
from domain.signing import Role, SigningKey, b64, canonical_json, unb64

app = typer.Typer(
    name="zhuisu",
    help="追溯 zhuisu: event-sourced audit of poverty-alleviation households and funds.",
    no_args_is_help=True,
    add_completion=False,
    # Never show local variables: they hold private keys and ID numbers.
    pretty_exceptions_show_locals=False,
)


class DemoSize(str, Enum):
    tiny = "tiny"
    small = "small"
    county = "county"


class UserError(Exception):
    """Bad input or environment: report it plainly and exit 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run(action: Any) -> Any:
    """Run one action, turning refusals into one line on stderr and a non-zero exit."""
    try:
        return action()
    except typer.Exit:
        raise
    except UserError as exc:
        fail(str(exc))
    except Exception as exc:
        problem = problem_from(exc)  # a domain refusal or a lost race: exit 2
        if problem is not None:
            typer.echo(problem.line(), err=True)
            raise typer.Exit(2) from None
        if isinstance(exc, PersistenceError):
            fail(f"the event store is unavailable: {exc}")
        if isinstance(exc, OSError):
            fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}")
        raise


def settings() -> Settings:
    s = Settings.from_env()
    configure_logging(s.log_format, s.log_level)
    bind_request("cli", actor=f"cli:{getpass.getuser()}")
    return s


def open_app() -> Zhuisu:
    return run(lambda: build_app(settings()))


def display_url(url: str) -> str:
    """The database URL without its password."""
    parts = urlparse(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not JSON: {exc.msg} (line {exc.lineno})") from exc


def print_json(data: Any, out: Path | None = None) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


# server and demo ---------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    demo: Annotated[bool, typer.Option(
        "--demo/--no-demo", envvar="ZHUISU_DEMO_ON_EMPTY",
        help="load the small demo when the store is empty")] = True,
) -> None:
    """Serve the HTTP API (docs at /docs) on the configured store (ZHUISU_DATABASE_URL)."""
    import uvicorn

    from api.http import create_app

    s = settings()
    api = create_app(s, demo_on_empty=demo)
    uvicorn.run(api, host=host, port=port, log_config=None, access_log=False)


@app.command()
def demo(
    size: Annotated[DemoSize, typer.Option(help="how much demo data")] = DemoSize.small,
    seed: Annotated[int | None, typer.Option(
        help="random seed (same seed, same data); default: the demo's own")] = None,
) -> None:
    """Fill an empty store with demo regions, officials, households and money."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    try:
        from api.demo import StoreNotEmpty, build_demo, store_is_empty
    except ModuleNotFoundError as exc:
        if exc.name != "api.demo":
            raise
        fail("demo data is not available in this installation (api.demo is missing)")

    zhuisu = open_app()
    refusal = (f"the store at {display_url(Settings.from_env().database_url)} already holds "
               "events; the demo loads into an empty store only (point ZHUISU_DATABASE_URL at "
               "a new one)")
    if not store_is_empty(zhuisu):
        fail(refusal)
    options: dict[str, Any] = {"size": size.value} | ({} if seed is None else {"seed": seed})
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(f"demo ({size.value})", total=None)
        try:
            summary = run(lambda: build_demo(
                zhuisu, **options,
                progress=lambda done, total: bar.update(task, completed=done, total=total)))
        except StoreNotEmpty:  # another writer got there first
            fail(refusal)
    typer.echo(f"demo ({size.value}): {summary.households} households, "
               f"{summary.officials} officials, {summary.events_written} events written in "
               f"{summary.seconds:.1f} s ({summary.events_per_second:,.0f} events/s)")


# an official's key and signature -------------------------------------------------------
@app.command()
def keygen(out: Annotated[Path, typer.Option("--out", help="private key file to create")]) -> None:
    """Create an Ed25519 signing key in a new file (mode 0600); print its public half."""
    key = SigningKey.generate()
    body = {"algorithm": "Ed25519", "key_id": key.key_id,
            "public_key": b64(key.public_bytes), "private_key": b64(key.private_bytes())}
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{out} exists; a key file is never overwritten")
    except OSError as exc:
        fail(f"cannot create {out}: {exc.strerror}")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(body, f, indent=2)
        f.write("\n")
    typer.echo(f"public_key: {body['public_key']}\nkey_id: {key.key_id}")


def load_key(path: Path) -> SigningKey:
    data = read_json(str(path))
    if not isinstance(data, dict) or not isinstance(data.get("private_key"), str):
        raise UserError(f"{path} is not a zhuisu key file (no private_key)")
    if path.stat().st_mode & 0o077:
        typer.echo(f"warning: {path} is readable by others; chmod 600 it", err=True)
    try:
        return SigningKey(Ed25519PrivateKey.from_private_bytes(
            unb64(data["private_key"], "private_key")))
    except ValueError as exc:
        raise UserError(f"{path}: the private key is not a 32-byte Ed25519 key") from exc


def hash_members(content: dict[str, Any], s: Settings) -> bool:
    """Replace clear ID numbers in ``members`` by their keyed hash; True if any was."""
    members = content.get("members")
    changed = False
    for i, member in enumerate(members if isinstance(members, list) else []):
        if isinstance(member, dict) and "id_number" in member:
            path = s.id_pepper_file
            if not path.exists():
                raise UserError(f"no ID pepper at {path}; set ZHUISU_ID_PEPPER_FILE to the "
                                "deployment's pepper so hashes match the register")
            number = member.pop("id_number")
            member["id_number_hash"] = hash_id_number(str(number), s.id_pepper(),
                                                      f"content.members[{i}].id_number")
            changed = True
    return changed


def sign_envelope(command: Any, key: SigningKey, official: str, role: Role,
                  s: Settings) -> dict[str, Any]:
    if not isinstance(command, dict) or not isinstance(command.get("step"), str):
        raise UserError("the command must be a JSON object with step, content (and subject)")
    content = command.get("content")
    if not isinstance(content, dict):
        raise UserError("the command needs a content object")
    try:
        official_id = str(UUID(official))
    except ValueError as exc:
        raise UserError(f"--official must be the official's UUID, not {official!r}") from exc
    signatures = command.get("signatures") or []
    if not isinstance(signatures, list) or not all(isinstance(x, dict) for x in signatures):
        raise UserError("signatures must be a list of objects")
    if hash_members(content, s) and signatures:
        raise UserError("ID numbers were hashed after others signed; their signatures would "
                        "no longer verify: sign the hashed command again from the start")
    subject = command.get("subject")
    if not subject and command["step"] == "Household.Applied":
        subject = str(Household.create_id(str(content.get("household_code"))))
    if not subject:
        raise UserError(f"{command['step']} needs the subject (the aggregate's UUID)")
    canonical_json(content)  # refuses floats before anything is signed
    signature = key.sign_step(command["step"], subject, content, official_id, role)
    kept = [x for x in signatures  # signing again replaces one's own earlier signature
            if not (x.get("official_id") == official_id and x.get("role") == role.value)]
    return {"step": command["step"], "subject": str(subject), "content": content,
            "signatures": [*kept, signature.as_dict()]}


@app.command()
def sign(
    command_json: Annotated[str, typer.Argument(help="command file ('-' for stdin)")],
    key: Annotated[Path, typer.Option("--key", help="private key file (zhuisu keygen)")],
    official: Annotated[str, typer.Option("--official", help="your official UUID")],
    role: Annotated[Role, typer.Option("--role", help="the role you sign in")],
    out: Annotated[Path | None, typer.Option("--out", help="write here, not stdout")] = None,
) -> None:
    """Add your signature over the command's canonical content.

    Clear ID numbers in content.members[*].id_number are first replaced by their keyed
    hash (the deployment's ID pepper), so no ID number is ever signed or sent.
    """
    s = settings()
    signed = run(lambda: sign_envelope(read_json(command_json), load_key(key), official, role, s))
    run(lambda: print_json(signed, out))


# the store -------------------------------------------------------------------------------
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
