"""The tamper-evident log (可追溯): checkpoints, proofs, full and offline verification.

``zhuisu checkpoint`` signs the log's current tree; ``zhuisu verify`` recomputes everything
from the stored records (and, with ``--checkpoint FILE``, holds it against a checkpoint
kept elsewhere); ``zhuisu prove`` writes a proof bundle; ``zhuisu verify-proof`` checks
one with nothing but the bundle and the log's public key — no database.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from cli.adapter import UserError, fail, print_json, run, settings
from audit import log, proofs, tree_store
from audit.verify import verify_log, verify_log_against

app = typer.Typer()


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


@app.command()
def checkpoint(
    list_: Annotated[bool, typer.Option("--list", help="list the stored checkpoints")] = False,
    export: Annotated[Path | None, typer.Option(help="write every checkpoint and the log's "
                                                     "public keys to this file")] = None,
    fmt: Annotated[str, typer.Option("--format", help="export as 'text' or 'json'")] = "text",
) -> None:
    """Sign a checkpoint of the log now (catching the tree up first), or list / export them."""
    s = settings()
    if list_:
        print_json(run(lambda: [r.to_dict() for r in log.list_checkpoints(s)]))
    elif export is not None:
        if fmt not in ("text", "json"):
            fail("--format must be 'text' or 'json'")
        _write(run(lambda: log.export_checkpoints(s, fmt=fmt)), export)
    else:
        _write(run(lambda: log.make_checkpoint(s)).note, None)


@app.command()
def verify(
    kept: Annotated[Path | None, typer.Option("--checkpoint", help="a checkpoint note kept "
                                              "outside the store, to hold the log against")] = None,
    workers: Annotated[int, typer.Option(min=1, help="processes scanning the log "
                                         "(default: one per CPU)")] = os.cpu_count() or 1,
    as_json: Annotated[bool, typer.Option("--json", help="print the full result as JSON")] = False,
) -> None:
    """Recompute the tree from every stored record; compare with the stored tree and every
    checkpoint.  Exit 0 if OK, 3 with the first position that differs otherwise."""
    s = settings()
    if kept is not None:
        note = run(lambda: _read_text(kept))
        result = run(lambda: verify_log_against(s, note, workers=workers))
    else:
        result = run(lambda: verify_log(s, workers=workers))
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(result.message)
        if result.first is not None and result.first.position is not None:
            typer.echo(f"first position that differs: notification id {result.first.position}")
    if not result.ok:
        raise typer.Exit(3)


@app.command()
def prove(
    position: Annotated[int | None, typer.Option(help="the event's notification id")] = None,
    originator: Annotated[str | None, typer.Option(help="or the event's aggregate id …")] = None,
    version: Annotated[int | None, typer.Option(help="… and version")] = None,
    checkpoint_id: Annotated[int | None, typer.Option("--checkpoint", help="checkpoint id "
                                                      "(default: the latest)")] = None,
    since: Annotated[int | None, typer.Option(help="instead: a consistency proof from this "
                                                   "checkpoint id to --checkpoint")] = None,
    out: Annotated[Path | None, typer.Option(help="write the bundle here")] = None,
) -> None:
    """Write an inclusion proof of one event in a checkpoint, or a consistency proof."""
    s = settings()
    if since is not None:
        bundle = run(lambda: log.prove_consistency(s, since, checkpoint_id))
    else:
        bundle = run(lambda: log.prove_inclusion(s, position=position, originator_id=originator,
                                                 version=version, checkpoint_id=checkpoint_id))
    _write(json.dumps(bundle, ensure_ascii=False, indent=2) + "\n", out)


@app.command("verify-proof")
def verify_proof(
    bundle: Annotated[Path, typer.Argument(help="proof bundle (JSON) from zhuisu prove")],
    key: Annotated[list[str], typer.Option(help="the log's public key (vkey text, or a file "
                                           "holding it or a checkpoint export); repeatable")],
) -> None:
    """Check a proof offline: only the bundle and the log's public key, no database."""
    keys = run(lambda: [k for spec in key for k in _keys(spec)])
    result = run(lambda: proofs.verify_bundle(_read_text(bundle), keys))
    if isinstance(result, tuple):
        old, new = result
        typer.echo(f"OK: the log of {new.origin} at {new.size} leaves extends its "
                   f"{old.size}-leaf checkpoint")
    else:
        typer.echo(f"OK: record at notification id {result.record.position} is leaf "
                   f"{result.leaf_index} of the {result.checkpoint.size}-leaf checkpoint of "
                   f"{result.checkpoint.origin}")


@app.command("log-key")
def log_key(
    rotate: Annotated[bool, typer.Option(help="replace the log key (the rotation is a "
                                              "checkpoint signed by both keys)")] = False,
    history: Annotated[bool, typer.Option(help="every key the log has used")] = False,
) -> None:
    """Print the log's public key (vkey), rotate it, or show its history."""
    s = settings()
    if rotate:
        typer.echo(run(lambda: log.rotate_log_key(s)).note, nl=False)
    elif history:
        print_json(run(lambda: [k.to_dict() for k in log.log_key_history(s)]))
    else:
        typer.echo(run(lambda: log.public_key(s)))


@app.command("tree-catch-up", hidden=True)
def tree_catch_up() -> None:
    """Append every new event to the stored tree (the server does this after each command)."""
    state = run(lambda: tree_store.catch_up(settings()))
    typer.echo(f"tree: {state.size} leaves")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc


def _keys(spec: str) -> list[str]:
    """A vkey given inline, or read from a file: a bare vkey, or a checkpoint export."""
    path = Path(spec)
    if "+" in spec and not path.exists():
        return [spec]
    text = _read_text(path)
    if text.lstrip().startswith("{"):
        exported = json.loads(text)
        return [k["vkey"] if isinstance(k, dict) else k for k in exported.get("keys", [])] or \
            [exported["public_key"]]
    keys = [w for line in text.splitlines() for w in line.lstrip("# ").split()[:1] if "+" in w]
    if not keys:
        raise UserError(f"{path}: expected a log public key (origin+keyid+key)")
    return keys
