"""The log's integrity alarm (``audit.alarm``): see it, and clear it once the log is whole.

While the alarm stands the server stores nothing, signs no checkpoint, gives no proof and
``/health`` is red.  What an operator does: ``zhuisu alarm show`` (what was found, where),
``zhuisu verify`` (the first position that differs, and how), restore the store from a
backup or stop the writer that changed it, ``zhuisu verify`` again until it says OK, then
``zhuisu alarm clear --reason "…"``: who cleared it, when and why are kept with the alarm.
"""

from __future__ import annotations

from typing import Annotated

import typer

from audit.alarm import active_alarms, alarm_history, clear_alarm
from audit.store import opened
from cli.adapter import cli_user, print_json, run, settings

app = typer.Typer(name="alarm", no_args_is_help=True,
                  help="The log's integrity alarm: show it; clear it after investigating.")


@app.command()
def show(
    history: Annotated[bool, typer.Option("--history", help="cleared alarms too, newest "
                                          "first")] = False,
) -> None:
    """The raised alarm(s) as JSON; exit 3 while one is raised, 0 when the log is trusted."""
    s = settings()

    def read() -> list:
        with opened(s) as store:
            return alarm_history(store) if history else active_alarms(store)

    alarms = run(read)
    if not alarms and not history:
        typer.echo("no integrity alarm: the log is trusted")
        return
    print_json([a.to_dict() for a in alarms])
    if any(a.active for a in alarms):
        raise typer.Exit(3)


@app.command()
def clear(
    reason: Annotated[str, typer.Option("--reason", help="what was found and done (e.g. "
                                        "'restored from the 02:00 backup; zhuisu verify OK')")],
) -> None:
    """Clear the alarm: writes, checkpoints and proofs resume.  Recorded with who and why."""
    s = settings()

    def clear_it() -> list:
        with opened(s) as store:
            return clear_alarm(store, reason=reason, by=cli_user())

    for alarm in run(clear_it):
        typer.echo(f"cleared integrity alarm {alarm.id} ({alarm.reason})")
