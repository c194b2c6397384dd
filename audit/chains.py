"""Chain heads committed by the checkpoints: other append-only records made tamper-evident
by the log's signatures.

Tables outside the event log that must be tamper-evident too — the access log (who looked
at which household) and the token changes (``access.chain``) — keep their own hash chain:
each row carries ``SHA-256(previous row's hash ‖ its canonical content)``, and the chain's
head (rows so far, hash of the last) is kept in the table ``chain_heads(chain, row_count,
last_id, head)``, updated in the same transaction as every append.  This module reads that table
*by name* (the audit layer does not import ``access``) and every checkpoint signs the
heads as extension lines of its note (c2sp.org/tlog-checkpoint allows them; verifiers that
do not know them ignore them)::

    zhuisu.example/log
    385
    YdAP6f08AjoSqBiXJYD767MnX5p92P841AlnYUrdJt0=
    time 2026-11-23T16:47:39Z
    chain access_log 1207 9b1c…(64 hex digits)
    chain token_changes 14 03fe…(64 hex digits)

so an insider who edits, deletes or re-chains rows after a checkpoint contradicts a signed
head.  ``committed_heads`` returns every signed head, from notes whose signature verifies
with a key the store knows; ``access.chain.verify_chains`` holds the rows against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, inspect

from audit.checkpoints import open_note
from audit.errors import AuditError
from audit.findings import Finding
from audit.logkey import known_keys
from audit.store import AuditStore, opened

HEADS_TABLE = "chain_heads"
_LINE = re.compile(r"chain ([a-z_]{1,32}) (0|[1-9][0-9]*) ([0-9a-f]{64})")


@dataclass(frozen=True)
class Commitment:
    """A chain head a checkpoint signed: ``rows`` rows of ``chain`` end in hash ``head``."""

    checkpoint_id: int
    time: str
    chain: str
    rows: int
    head: str  # 64 hex digits


def _has_heads(store: AuditStore, conn: Connection) -> bool:
    if getattr(store, "_chain_heads_table", False):
        return True
    found = inspect(conn).has_table(HEADS_TABLE, schema=store.schema)
    if found:
        store._chain_heads_table = True  # type: ignore[attr-defined]
    return found


def current_heads(store: AuditStore, conn: Connection) -> list[tuple[str, int, str]]:
    """(chain, rows, head hex) of every chain, from the heads table if there is one."""
    if not _has_heads(store, conn):
        return []
    rows = store.raw(conn, f"SELECT chain, row_count, head FROM {store.table_sql(HEADS_TABLE)} "
                           f"ORDER BY chain")
    return [(str(c), int(n), str(h)) for c, n, h in rows if _LINE.fullmatch(f"chain {c} {n} {h}")]


def extension_lines(heads: list[tuple[str, int, str]]) -> str:
    """The checkpoint note's extension lines for these heads."""
    return "".join(f"chain {chain} {rows} {head}\n" for chain, rows, head in heads)


def heads_in_text(text: str) -> dict[str, tuple[int, str]]:
    """{chain: (rows, head)} from a checkpoint note's text (its extension lines)."""
    out = {}
    for line in text.split("\n")[4:]:
        m = _LINE.fullmatch(line)
        if m:
            out[m[1]] = (int(m[2]), m[3])
    return out


def committed_heads(source: Any) -> tuple[list[Commitment], list[Finding]]:
    """Every chain head signed by a stored checkpoint whose note verifies, in checkpoint
    order; notes that do not verify are findings (and commit nothing)."""
    with opened(source) as store, store.engine.connect() as conn:
        trusted = [k.key for k in known_keys(conn)]
        rows = store.raw(conn, f"SELECT id, time, note FROM "
                               f"{store.table_sql('log_checkpoints')} ORDER BY id")
    commitments: list[Commitment] = []
    findings: list[Finding] = []
    for cid, when, note in rows:
        if "\nchain " not in note:
            continue
        try:
            text, _ = open_note(note, trusted)
        except (AuditError, ValueError) as exc:
            findings.append(Finding("checkpoint", f"checkpoint {cid}: "
                                    f"{getattr(exc, 'message', exc)}", checkpoint_id=cid))
            continue
        commitments += [Commitment(int(cid), str(when), chain, n, head)
                        for chain, (n, head) in heads_in_text(text).items()]
    return commitments, findings


def latest_heads(source: Any) -> dict[str, tuple[int, str]]:
    """The heads as they are now in the heads table (the checkpoint thread's "did anything
    grow" test)."""
    with opened(source) as store, store.engine.connect() as conn:
        return {c: (n, h) for c, n, h in current_heads(store, conn)}
