"""Payment batches (支付令 + 分户清单) and bank returns (回盘): rows signed once, by root.

A county pays thousands of households from one 支付令 and one 分户清单.  Signing each
payment three times is not how the work is done, and not what a signer can read.  So the
officials sign a *manifest* once: the batch's account, purpose, business date, document
number, payee kind, the number of rows, their total in fen and the Merkle root of the
rows.  The root commits to every row: change, drop, add or reorder one and the root
differs, so the signatures no longer cover the batch.

The rows' tree is the log's tree (RFC 6962, ``domain.merkle``).  Leaf ``i`` is the
canonical JSON (``domain.signing.canonical_json``) of the row with its batch id, its index
and a domain tag::

    {"amount_fen":120000,"bank_account_hash":null,"batch_id":"…","holder_id_hash":null,
     "movement_id":"…","payee_id":"…","payee_kind":"household","project_id":null,
     "reissue_of":null,"row":0,"source_row":5,"tag":"zhuisu-batch-row/v1"}

On execution each row becomes its own ``FundAccount.Disbursed`` event that names the
batch and its row (``batch``) and carries the batch's signatures: every invariant, red
flag and responsibility chain of a payment applies per row, and the chain shows the
batch's signers.  Anyone holding the rows can recompute the root (``rows_root``) or prove
one row with its path (``row_path`` / ``check_row``).

A bank's return file (回盘) answers one batch: its manifest (``FundAccount.ReturnsRecorded``)
counts the rows credited and those returned, and commits by root to the returned rows
only (leaves tagged ``zhuisu-return-row/v1``), each of which becomes its own
``FundAccount.PaymentReturned`` event; the credited rows are the batch's other rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from domain.errors import InvalidInput
from domain.merkle import (
    EMPTY_ROOT,
    ProofError,
    hash_leaf,
    inclusion_proof_from_leaves,
    root_from_leaf_hashes,
    verify_inclusion,
)
from domain.signing import canonical_json

PAYMENT_ROW = "zhuisu-batch-row/v1"
RETURN_ROW = "zhuisu-return-row/v1"
ROSTER_ROW = "zhuisu-roster-row/v1"

# The fields of one row of each kind, as signed (through the root): every key is present.
PAYMENT_ROW_FIELDS = ("movement_id", "payee_kind", "payee_id", "amount_fen", "project_id",
                      "bank_account_hash", "holder_id_hash", "source_row", "reissue_of")
RETURN_ROW_FIELDS = ("of_movement_id", "amount_fen", "reason", "bank_serial", "source_row")
# What a row event keeps of its row besides the payment's own fields (``batch`` field).
PAYMENT_EXTRAS = ("bank_account_hash", "holder_id_hash", "source_row", "reissue_of")
RETURN_EXTRAS = ("bank_serial", "source_row")
# A 花名册 row: one household as the national register exports it (its members' ID numbers
# hashed at import), and the file rows it came from.
ROSTER_ROW_FIELDS = ("household_code", "village_code", "effective_date", "head_name",
                     "members", "main_cause", "secondary_causes", "income_per_capita_fen",
                     "bank_account_hash", "exited_on", "source_rows")
ROSTER_EXTRAS = ("exited_on", "source_rows")

MAX_ROWS = 500_000
EMPTY_ROOT_HEX = EMPTY_ROOT.hex()


def row_leaf(tag: str, manifest_id: str, index: int, row: Mapping[str, Any]) -> bytes:
    """The leaf data of row ``index`` (see the module docstring)."""
    return canonical_json({**row, "tag": tag, "batch_id": str(manifest_id), "row": index})


def leaf_hashes(tag: str, manifest_id: str, rows: Sequence[Mapping[str, Any]]) -> list[bytes]:
    return [hash_leaf(row_leaf(tag, manifest_id, i, r)) for i, r in enumerate(rows)]


def rows_root(tag: str, manifest_id: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """The hex Merkle root of ``rows`` (the empty tree's root when there are none)."""
    return root_from_leaf_hashes(leaf_hashes(tag, manifest_id, rows)).hex()


def row_path(tag: str, manifest_id: str, rows: Sequence[Mapping[str, Any]],
             index: int) -> list[str]:
    """The inclusion path of row ``index`` (hex hashes, from the leaf upwards)."""
    return [h.hex() for h in inclusion_proof_from_leaves(
        index, leaf_hashes(tag, manifest_id, rows))]


def check_row(tag: str, manifest_id: str, index: int, row: Mapping[str, Any], count: int,
              path: Iterable[str], root_hex: str) -> None:
    """Raise ``ProofError`` unless ``row`` is row ``index`` of the ``count`` rows whose
    root is ``root_hex``."""
    try:
        proof = [bytes.fromhex(p) for p in path]
        root = bytes.fromhex(root_hex)
    except (TypeError, ValueError) as exc:
        raise ProofError("path and root are hex SHA-256 hashes") from exc
    verify_inclusion(hash_leaf(row_leaf(tag, manifest_id, index, row)), index, count,
                     proof, root)


def payment_row_of(event_vars: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """(batch id, row index, the row as signed) of a stored batch payment's fields."""
    batch = event_vars["batch"]
    row = {k: event_vars[k] for k in ("movement_id", "payee_kind", "payee_id", "amount_fen",
                                       "project_id")}
    row.update({k: batch.get(k) for k in PAYMENT_EXTRAS})
    return batch["batch_id"], batch["row"], row


def return_row_of(event_vars: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """(return id, row index, the row as signed) of a stored returned payment's fields."""
    batch = event_vars["batch"]
    row = {k: event_vars[k] for k in ("of_movement_id", "amount_fen", "reason")}
    row.update({k: batch.get(k) for k in RETURN_EXTRAS})
    return batch["return_id"], batch["row"], row


def roster_row_of(event_vars: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """(import id, row index, the row as signed) of a household imported from a roster."""
    batch = event_vars["batch"]
    row = {k: event_vars[k] for k in ROSTER_ROW_FIELDS if k not in ROSTER_EXTRAS}
    row.update({k: batch.get(k) for k in ROSTER_EXTRAS})
    return batch["import_id"], batch["row"], row


def roster_row(row: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One household row of a roster import: every field present (the household's own
    checks follow when it is created)."""
    where = f"rows[{index}]"
    _fields(row, ROSTER_ROW_FIELDS, ("household_code", "village_code", "effective_date",
                                     "head_name", "members", "main_cause"), where)
    out = {k: row.get(k) for k in ROSTER_ROW_FIELDS}
    out["effective_date"] = _date(out["effective_date"], f"{where}.effective_date")
    if out["exited_on"] is not None:
        out["exited_on"] = _date(out["exited_on"], f"{where}.exited_on")
    out["secondary_causes"] = list(out["secondary_causes"] or [])
    out["income_per_capita_fen"] = out["income_per_capita_fen"] or 0
    sources = out["source_rows"] or []
    if not isinstance(sources, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in sources):
        raise InvalidInput("the file rows a household came from: a list of row numbers",
                           field=f"{where}.source_rows")
    out["source_rows"] = list(sources)
    return out


def returned_movement_id(return_id: str, index: int) -> str:
    """The movement id of returned row ``index``: derived, so a retry stores nothing new."""
    return str(uuid.uuid5(uuid.UUID(str(return_id)), f"returned/{index}"))


# checking what a client sends -------------------------------------------------------
def _uuid(value: object, field: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise InvalidInput("must be a UUID", field=field) from exc


def _optional_text(value: object, field: str, limit: int = 200) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"must be text of at most {limit} characters, or null", field=field)
    return value


def _optional_int(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("must be a non-negative integer, or null", field=field)
    return value


def _date(value: object, field: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput("must be a date YYYY-MM-DD", field=field) from exc


def _amount(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput("must be a positive integer number of fen", field=field)
    return value


def rows_list(rows: object, field: str = "rows") -> list[Mapping[str, Any]]:
    if not isinstance(rows, list) or not rows:
        raise InvalidInput("a batch carries its rows: a non-empty list", field=field)
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"at most {MAX_ROWS} rows per batch", field=field)
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise InvalidInput("must be an object", field=f"{field}[{i}]")
    return rows


def _fields(row: Mapping[str, Any], allowed: Sequence[str], required: Sequence[str],
            where: str) -> None:
    extra = sorted(set(row) - set(allowed))
    if extra:
        raise InvalidInput(f"a row has no field {extra[0]}; its fields are {sorted(allowed)}",
                           field=f"{where}.{extra[0]}")
    for name in required:
        if row.get(name) is None:
            raise InvalidInput(f"every row needs {name}", field=f"{where}.{name}")


def payment_row(row: Mapping[str, Any], index: int, payee_kind: str) -> dict[str, Any]:
    """One row of a payment batch, checked and completed (absent optional fields null)."""
    where = f"rows[{index}]"
    _fields(row, PAYMENT_ROW_FIELDS, ("movement_id", "payee_id", "amount_fen"), where)
    if row.get("payee_kind", payee_kind) != payee_kind:
        raise InvalidInput(f"every row of this batch pays a {payee_kind}",
                           field=f"{where}.payee_kind")
    if row.get("project_id") is not None:
        raise InvalidInput("household batches name no project", field=f"{where}.project_id")
    return {
        "movement_id": _uuid(row["movement_id"], f"{where}.movement_id"),
        "payee_kind": payee_kind,
        "payee_id": _uuid(row["payee_id"], f"{where}.payee_id"),
        "amount_fen": _amount(row["amount_fen"], f"{where}.amount_fen"),
        "project_id": None,
        "bank_account_hash": _optional_text(row.get("bank_account_hash"),
                                            f"{where}.bank_account_hash", 128),
        "holder_id_hash": _optional_text(row.get("holder_id_hash"), f"{where}.holder_id_hash",
                                         128),
        "source_row": _optional_int(row.get("source_row"), f"{where}.source_row"),
        "reissue_of": (None if row.get("reissue_of") is None
                       else _uuid(row["reissue_of"], f"{where}.reissue_of")),
    }


def return_row(row: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One returned (failed) row of a bank return, checked and completed."""
    where = f"rows[{index}]"
    _fields(row, RETURN_ROW_FIELDS, ("of_movement_id", "amount_fen", "reason"), where)
    reason = row["reason"]
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
        raise InvalidInput("a returned payment names the bank's reason (失败原因)",
                           field=f"{where}.reason")
    return {
        "of_movement_id": _uuid(row["of_movement_id"], f"{where}.of_movement_id"),
        "amount_fen": _amount(row["amount_fen"], f"{where}.amount_fen"),
        "reason": reason,
        "bank_serial": _optional_text(row.get("bank_serial"), f"{where}.bank_serial", 64),
        "source_row": _optional_int(row.get("source_row"), f"{where}.source_row"),
    }


def check_manifest(*, tag: str, manifest_id: str, rows: Sequence[Mapping[str, Any]],
                   row_count: object, total_fen: object | None, root: object,
                   count_field: str = "row_count", total_field: str = "total_fen",
                   root_field: str = "rows_root") -> None:
    """Refuse a manifest that does not describe ``rows`` exactly: count, total (rows
    with amounts), root."""
    if row_count != len(rows):
        raise InvalidInput(f"the manifest says {row_count} rows; {len(rows)} were sent",
                           field=f"content.{count_field}")
    total = None if total_fen is None else sum(r["amount_fen"] for r in rows)
    if total_fen != total:
        raise InvalidInput(f"the manifest says {total_fen} fen; the rows add up to {total}",
                           field=f"content.{total_field}")
    if not isinstance(root, str) or root != rows_root(tag, manifest_id, rows):
        raise InvalidInput("the rows' Merkle root differs from the signed manifest's: the rows "
                           "are not the ones signed", field=f"content.{root_field}")


__all__ = ["PAYMENT_ROW", "RETURN_ROW", "ProofError", "check_row", "row_path", "rows_root",
           "row_leaf", "payment_row", "return_row", "check_manifest", "payment_row_of",
           "return_row_of", "returned_movement_id", "EMPTY_ROOT_HEX", "ROSTER_ROW",
           "roster_row", "roster_row_of"]
