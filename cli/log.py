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
from typing import Annotated, Any

import typer

from sqlalchemy import inspect

from access.chain import ChainReport, verify_chains
from audit.chains import committed_heads
from audit.checkpoints import parse_vkey
from audit.errors import AuditError, CheckpointSignatureError, RecordFormatError
from audit.merkle import ProofError
from cli.adapter import UserError, fail, print_json, run, settings
from domain.errors import DomainError
from store.engines import new_engine
from audit import log, proofs, tree_store
from audit.batch_proofs import BATCH_ROW, VerifiedBatchRow, verify_batch_row_bundle
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
    kept: Annotated[list[Path] | None, typer.Option(
        "--checkpoint", help="a checkpoint note kept outside the store, to hold the log "
        "against; repeatable (several narrow down where a rewrite begins)")] = None,
    key: Annotated[list[str] | None, typer.Option(
        "--key", help="a log public key (vkey) to trust, from outside the store; "
        "repeatable")] = None,
    keys_file: Annotated[Path | None, typer.Option(
        "--keys", help="a file of trusted log public keys: a checkpoint export (text or "
        "JSON) or vkeys, one a line")] = None,
    signatures: Annotated[bool, typer.Option(
        "--signatures", help="also re-verify every stored signature (slower: see "
        "bench/verify.py)")] = False,
    workers: Annotated[int, typer.Option(min=1, help="processes scanning the log "
                                         "(default: one per CPU)")] = os.cpu_count() or 1,
    as_json: Annotated[bool, typer.Option("--json", help="print the full result as JSON")] = False,
) -> None:
    """Recompute the tree from every stored record; compare with the stored tree, every
    checkpoint, every snapshot and the key history.

    Log keys are trusted from outside the store: --key / --keys, else the log key file
    (ZHUISU_LOG_KEY_FILE); --checkpoint needs one of them.  Exit codes: 0 OK; 1 a file
    or key that cannot be read; 2 refused (--checkpoint with no log key from outside the
    store); 3 something does not hold: the first finding and its position are printed.
    """
    s = settings()
    trusted = run(lambda: [k for spec in (key or []) for k in _keys(spec)]
                  + (_keys(str(keys_file)) if keys_file is not None else []))
    if kept:
        notes = run(lambda: [_read_text(path) for path in kept])
        result = run(lambda: verify_log_against(s, notes, workers=workers, keys=trusted or None,
                                                signatures=signatures))
    else:
        result = run(lambda: verify_log(s, workers=workers, keys=trusted or None,
                                        signatures=signatures))
    chains = run(lambda: _chains(s))  # the access log and token changes (access.chain)
    if as_json:
        print_json({**result.to_dict(), "chains": [c.to_dict() for c in chains]})
    else:
        typer.echo(result.message)
        first = result.first
        if first is not None and first.position is not None:
            typer.echo(f"first position that differs: notification id {first.position}")
        if first is not None and first.last_intact_position is not None:
            typer.echo(f"last intact: notification id {first.last_intact_position} "
                       f"(leaf {first.leaf_index - 1}); first missing: leaf {first.leaf_index}")
        if len(result.findings) > 1:
            typer.echo(f"({len(result.findings) - 1} more findings: --json lists them all)")
        for report in chains:
            typer.echo(report.message)
            if report.first_bad_row is not None:
                typer.echo(f"first bad row of {report.chain}: {report.first_bad_row}")
    if not result.ok or not all(c.ok for c in chains):
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
    bundle: Annotated[Path, typer.Argument(help="proof bundle (JSON) from zhuisu prove, or a "
                                           "write's receipt (or its whole answer)")],
    key: Annotated[list[str], typer.Option(help="the log's public key (vkey text, or a file "
                                           "holding it or a checkpoint export); repeatable")],
    officials: Annotated[Path | None, typer.Option(help="a batch row's bundle: JSON list of "
                                                   "{official_id, key_id, public_key} to "
                                                   "verify the manifest's signatures")] = None,
) -> None:
    """Check a proof offline: only the bundle and the log's public key, no database.

    Exit codes: 0 the proof verifies; 1 the bundle or a key cannot be read (no file, not
    JSON, a missing or mistyped field, bad base64, a malformed vkey); 3 it is read but does
    not verify (no signature by a trusted key, a bad signature, a record that is not
    canonical, hashes that do not lead to the signed root).  Errors are one line
    ``error: …`` on stderr.
    """
    keys = _proof_checked(lambda: [k for spec in key for k in _keys(spec)])
    known = None if officials is None else _proof_checked(lambda: _officials(officials))
    result = _proof_checked(lambda: _verify_any(_read_text(bundle), keys, known))
    if isinstance(result, VerifiedBatchRow):
        signed = (f"; the manifest's {result.signatures_checked} signatures verify"
                  if known is not None else "")
        typer.echo(f"OK: batch {result.batch_id} row {result.row_index} of "
                   f"{result.row_count}: the row (notification id {result.row_position}) "
                   f"folds to the rows root of its manifest (notification id "
                   f"{result.manifest_position}), both leaves of the "
                   f"{result.checkpoint.size}-leaf checkpoint of {result.checkpoint.origin}"
                   f"{signed}")
    elif isinstance(result, proofs.VerifiedReceipt):
        cp = result.checkpoint
        typer.echo(f"OK: receipt: records at notification ids "
                   f"{', '.join(str(e.record.position) for e in result.entries)} are leaves "
                   f"{', '.join(str(e.leaf_index) for e in result.entries)} of the "
                   f"{cp.size}-leaf checkpoint of {cp.origin} signed {cp.time}")
    elif isinstance(result, tuple):
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


def _verify_any(text: str, keys: list[str], officials: list | None = None) -> object:
    """A proof bundle, a batch row's bundle, a write's receipt, or a write's whole answer
    holding its receipt."""
    try:
        data = json.loads(text)
    except ValueError:
        return proofs.verify_bundle(text, keys)  # says why it is not a bundle
    if isinstance(data, dict) and data.get("type") == BATCH_ROW:
        return verify_batch_row_bundle(data, keys, officials)
    if isinstance(data, dict) and isinstance(data.get("receipt"), dict):
        data = data["receipt"]
    if isinstance(data, dict) and data.get("type") == proofs.RECEIPT:
        return proofs.verify_receipt_bundle(data, keys)
    return proofs.verify_bundle(data, keys)


def _chains(s: object) -> list[ChainReport]:
    """The chained tables held against their heads and the heads the checkpoints signed
    (none on a store without the API's tables: nothing is created here)."""
    engine = new_engine(s.database_url, "tables")  # type: ignore[attr-defined]
    try:
        if not inspect(engine).has_table("chain_heads"):
            return []
        commitments, _ = committed_heads(s)  # bad notes are verify_log's findings
        return verify_chains(engine, commitments)
    finally:
        engine.dispose()


def _officials(path: Path) -> list:
    """``--officials``: a JSON list of {official_id, key_id, public_key}."""
    try:
        found = json.loads(_read_text(path))
    except ValueError as exc:
        raise UserError(f"{path}: expected JSON, got {exc}") from None
    if not isinstance(found, list) or not all(
            isinstance(o, dict) and {"official_id", "key_id", "public_key"} <= set(o)
            for o in found):
        raise UserError(f"{path}: expected a list of {{official_id, key_id, public_key}}")
    return found


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc


def _keys(spec: str) -> list[str]:
    """A vkey given inline, or read from a file: a bare vkey, vkeys one a line, or a
    checkpoint export (text or JSON).  Each is checked here: a malformed one is bad input."""
    path = Path(spec)
    if "+" in spec and not path.exists():
        return [_vkey(spec, "--key")]
    text = _read_text(path)
    if text.lstrip().startswith("{"):
        try:
            exported = json.loads(text)
            keys = [k["vkey"] if isinstance(k, dict) else k
                    for k in exported.get("keys", [])] or [exported["public_key"]]
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: expected a checkpoint export (JSON with 'keys' or "
                            f"'public_key'), got {type(exc).__name__}: {exc}") from None
        return [_vkey(k, str(path)) for k in keys]
    keys = []
    for line in text.splitlines():
        for word in line.lstrip("# ").split()[:1]:
            try:
                keys.append(parse_vkey(word).vkey)
            except (AuditError, ValueError):
                continue  # a note's lines, a comment: not a key
    if not keys:
        raise UserError(f"{path}: expected a log public key (origin+keyid+key)")
    return keys


def _vkey(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{where}: expected a log public key (vkey text), got {value!r}")
    try:
        return parse_vkey(value).vkey
    except (AuditError, ValueError) as exc:
        raise UserError(f"{where}: {getattr(exc, 'message', exc)}") from None


def _proof_checked(action: Any) -> Any:
    """Run a step of verify-proof: any failure is one line ``error: …`` and exit 1 (the
    bundle or key cannot be read as one) or 3 (it is read but does not verify)."""
    try:
        return action()
    except typer.Exit:
        raise
    except UserError as exc:
        fail(str(exc), 1)
    except (CheckpointSignatureError, RecordFormatError, ProofError) as exc:
        fail(_reason(exc), 3)
    except (AuditError, ValueError, TypeError, KeyError, AttributeError, IndexError,
            RecursionError) as exc:
        fail(_reason(exc), 1)


def _reason(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return f"{exc.rule}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
