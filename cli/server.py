"""Serving the API, and demo data."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.adapter import cli_user, display_url, fail, open_app, run, settings
from store.settings import Settings, build_app

app = typer.Typer()


class DemoSize(str, Enum):
    tiny = "tiny"
    small = "small"
    county = "county"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    demo: Annotated[bool, typer.Option(
        "--demo/--no-demo", envvar="ZHUISU_DEMO_ON_EMPTY",
        help="load the small demo when the store is empty")] = True,
    bootstrap_admin: Annotated[bool, typer.Option(
        "--bootstrap-admin/--no-bootstrap-admin", envvar="ZHUISU_BOOTSTRAP_ADMIN",
        help="when no administrator's token exists, write one to ZHUISU_ADMIN_TOKEN_FILE "
             "(default var/admin-token, mode 0600)")] = True,
) -> None:
    """Serve the HTTP API (docs at /docs) on the configured store (ZHUISU_DATABASE_URL)."""
    import uvicorn

    from api.http import create_app

    s = settings()
    run(lambda: build_app(s).close())  # a store it may not open (another ID pepper): one line
    seed = None
    if demo:
        from demo.build import load_demo_if_empty as seed
    api = create_app(s, seed=seed, bootstrap_admin=bootstrap_admin)
    uvicorn.run(api, host=host, port=port, log_config=None, access_log=False)


@app.command()
def demo(
    size: Annotated[DemoSize, typer.Option(help="how much demo data")] = DemoSize.small,
    seed: Annotated[int | None, typer.Option(
        help="random seed (same seed, same data); default: the demo's own")] = None,
    plant: Annotated[int, typer.Option(
        min=0, help="plant this many of each kind of misconduct the red-flag rules look for")] = 0,
    truth: Annotated[Path | None, typer.Option(
        help="write the ground truth (what was planted, what the rules must flag) as JSON")] = None,
    plant_registers: Annotated[int, typer.Option(
        "--plant-registers", min=0,
        help="plant this many register matches of each comparison model (大数据比对): the "
             "registers are written beside --truth (or to ./demo-registers) with their "
             "ground truth, and imported")] = 0,
) -> None:
    """Fill an empty store with demo regions, officials, households and money."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    try:
        from demo.build import StoreNotEmpty, build_demo, store_is_empty
    except ModuleNotFoundError as exc:
        if exc.name != "demo.build":
            raise
        fail("demo data is not available in this installation (demo.build is missing)")

    zhuisu = open_app()
    refusal = (f"the store at {display_url(Settings.from_env().database_url)} already holds "
               "events; the demo loads into an empty store only (point ZHUISU_DATABASE_URL at "
               "a new one)")
    if not store_is_empty(zhuisu):
        fail(refusal)
    options: dict[str, Any] = ({"size": size.value} | ({} if seed is None else {"seed": seed})
                               | ({"plant": plant} if plant else {})
                               | ({"plant_registers": plant_registers} if plant_registers
                                  else {}))
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
    if truth is not None:
        from demo.misconduct import write_truth

        write_truth(summary.truth, truth)
        planted = sum(len(r["planted"]) for r in summary.truth["rules"].values())
        typer.echo(f"truth: {planted} planted items ({plant} per kind) written to {truth}")
    registers = getattr(summary, "registers", None)  # planted only with --plant-registers
    if registers is not None:
        _import_registers(zhuisu, registers, truth)


def _import_registers(zhuisu: Any, registers: Any, truth: Path | None) -> None:
    """Write the planted registers and their truth, and import them (as ``cli:<user>``)."""
    from exchange.registers import import_register

    folder = (truth.parent / f"{truth.stem}-registers") if truth else Path("demo-registers")
    truth_path = (truth.parent / f"{truth.stem}.registers.json") if truth \
        else folder / "truth.json"
    registers.write(folder, truth_path)
    kept = 0
    for f in registers.files:
        done = run(lambda f=f: import_register(
            zhuisu, department=f.department, kind=f.kind, as_of=f.as_of, data=f.data,
            filename=f.filename, imported_by=cli_user(), confirm=True))
        kept += done["rows_kept"]
    planted = sum(len(m["planted"]) for m in registers.truth["models"].values())
    typer.echo(f"registers: {len(registers.files)} files ({kept} rows) imported from {folder}; "
               f"truth: {planted} planted matches written to {truth_path}")
