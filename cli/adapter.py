"""How a command talks to the terminal and the store: settings and logging, running an
action with refusals as one line on stderr, reading and printing JSON."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlparse

import typer
from eventsourcing.persistence import PersistenceError

from runtime.logging import bind_request, configure_logging
from access.errors import refusal_problem
from store.settings import Settings, build_app
from domain.application import Zhuisu


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
        problem = refusal_problem(exc)  # a domain refusal or a lost race: exit 2
        if problem is not None:
            typer.echo(problem.line(), err=True)
            raise typer.Exit(2) from None
        if isinstance(exc, PersistenceError):
            fail(f"the event store is unavailable: {exc}")
        if isinstance(exc, OSError):
            fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}")
        raise


def cli_user() -> str:
    return f"cli:{getpass.getuser()}"


def settings() -> Settings:
    s = Settings.from_env()
    configure_logging(s.log_format, s.log_level)
    bind_request("cli", actor=cli_user())
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
