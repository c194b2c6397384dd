"""The read models (projections): follow the log, report lag and rebuilds, rebuild from zero.

``zhuisu project run`` is the worker of a PostgreSQL deployment (woken by NOTIFY; any
number may run, each projection is advanced by one at a time); the server also catches
the projections up in-process after each write, so an embedded SQLite store needs none.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from cli.adapter import print_json, run, settings
from projections import runner

app = typer.Typer(name="project", help="Projections (read models): run, lag, rebuild.",
                  no_args_is_help=True)

Names = Annotated[list[str] | None, typer.Option("--name", help="only these projections "
                                                  "(repeatable; default: all)")]


@app.command("run")
def run_worker(names: Names = None,
               poll: Annotated[float, typer.Option(min=0.05, help="seconds between polls when "
                                                   "no NOTIFY arrives")] = 1.0) -> None:
    """Follow the event log until interrupted (SIGINT / SIGTERM)."""
    url = settings().database_url
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"following the log of {url.split('@')[-1]} (Ctrl-C stops)", err=True)
    run(lambda: runner.run_worker(url, stop, names=names, poll_seconds=poll))


@app.command()
def lag() -> None:
    """Per projection: its tracking position, the head of the log, and the gap."""
    print_json(run(lambda: runner.lag(settings().database_url)))


@app.command()
def status() -> None:
    """Per projection: position, head, lag, failed events, and a rebuild under way (a new
    layout built beside the live tables: its version, position, events behind, start)."""
    print_json(run(lambda: runner.lag(settings().database_url, failures=5)))


@app.command("catch-up")
def catch_up(names: Names = None) -> None:
    """Bring the projections up to the end of the log once."""
    print_json(run(lambda: runner.catch_up(settings().database_url, names=names)))


@app.command()
def rebuild(names: Names = None) -> None:
    """Empty the projections' tables and rebuild them from position 0."""
    print_json(run(lambda: runner.rebuild(settings().database_url, names=names)))
