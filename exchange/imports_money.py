"""发放清册 and 回盘 imports: a payment batch on an account, and the bank's answer to it.

**发放清册 / 分户清单 → ``FundAccount.BatchOrdered``.**  Each row's household is found by
户编号, else by the ID hash of 户主证件号码 or 证件号码 (a household's head first, else the one
household the person is a member of), among the households of the account's region.  A row
is refused, with the reason the domain would give, when the household is unknown, outside
the account's region, not on the register on the payment date (removed 清退, exited for a
purpose that does not continue after exit, never registered: the household's own
``check_can_receive``), its village's payments of the purpose are suspended by a case, or
it is named twice in the list.  The purpose must pay households and the account must hold
the total.  Each row becomes {movement_id (new), payee_id, amount_fen, bank_account_hash
(银行卡号), holder_id_hash (the row's 证件号码), source_row, reissue_of: null}.

**回盘 → ``FundAccount.ReturnsRecorded``.**  Each return row is matched to one payment of
the batch: by bank account hash and amount, else by the holder's ID hash and amount, else
by 序号 = the payment's row in the 发放清册 (its ``source_row``).  Every payment of the batch
must be answered exactly once; 成功 rows are counted as credited, 失败 rows become returned
rows {of_movement_id, amount_fen, reason (失败原因), bank_serial (流水号), source_row}.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from domain import batch
from domain.application import Zhuisu
from domain.errors import HouseholdNotRegistered, InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.household import Household, Status
from domain.money import PURPOSES, PayeeKind, Purpose
from domain.money import purpose as purpose_of
from domain.region import Region
from domain.signed import step_name
from exchange.formats import Parsed, RowError
from exchange.imports_common import WHOLE_FILE, DryRun, region_codes_within, yuan
from exchange.labels import PURPOSE_ZH
from projections.directory import Directory


def purpose_code(value: str) -> Purpose:
    """A purpose by its code or its Chinese title."""
    text = (value or "").strip()
    by_title = {p.title: code for code, p in PURPOSES.items()}
    return purpose_of(by_title.get(text, text), "purpose")


def _not_registered_zh(household: Household, day: dt.date, p: Purpose) -> str:
    """The domain's refusal (``Household.check_can_receive``) in Chinese."""
    status = household.status_on(day)
    since = household.status_since(day)
    if status is None:
        why = f"农户{household.code}在{day.isoformat()}未在册（未建档立卡），不能发放"
    elif status is Status.REMOVED:
        why = f"农户{household.code}已于{since}清退，发放日期为{day.isoformat()}，不能发放"
    elif status is Status.EXITED:
        why = (f"农户{household.code}已于{since}脱贫退出，“{PURPOSE_ZH.get(p.code, p.code)}”"
               f"不属于脱贫后延续的政策，不能发放")
    else:
        why = f"农户{household.code}在{day.isoformat()}不在册，不能发放"
    return why + "（HouseholdNotRegistered）"


class _Members:
    """ID hash → households of the account's region (heads first), built on first use."""

    def __init__(self, app: Zhuisu, directory: Directory, level: str, code: str):
        self.app, self.directory, self.level, self.code = app, directory, level, code
        self.heads: dict[str, list[str]] | None = None
        self.members: dict[str, list[str]] = {}

    def find(self, id_hash: str) -> list[str]:
        if self.heads is None:
            self.heads = {}
            self.directory.catch_up(self.app)
            for village in region_codes_within(self.directory, self.level, self.code):
                for hid in self.directory.households_in(village):
                    h = self.app.load(Household, hid)
                    for m in h.members:
                        into = self.heads if m["relation"] == "head" else self.members
                        into.setdefault(m["id_number_hash"], []).append(str(hid))
        return self.heads.get(id_hash) or self.members.get(id_hash) or []


def payment_dry_run(run: DryRun, parsed: Parsed, app: Zhuisu, directory: Directory, *,
                    account_id: str, purpose: str, document_no: str,
                    effective_date: dt.date) -> list[RowError]:
    """Match and check a parsed 发放清册 against the account; fill ``run``; answer the row
    errors beyond the file's own."""
    account = app.load(FundAccount, account_id, "account")
    p = purpose_code(purpose)
    if PayeeKind.HOUSEHOLD not in p.payees:
        raise InvalidInput(f"“{p.title}”（{p.code}）不发放到户，不能按分户清单发放 / "
                           f"{p.code} is not paid to households", field="purpose")
    if not (document_no or "").strip():
        raise InvalidInput("请填写文号（支付令文号） / a batch names its document number",
                           field="document_no")
    run.region_path = dict(account.region_path)
    level = account.level.value
    members = _Members(app, directory, level, account.region_code)
    columns = parsed.columns
    errors: list[RowError] = []
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    suspended: dict[str, str | None] = {}
    for r in parsed.rows:
        number = r["_row"]
        code = (r.get("household_code") or "").strip() or None
        household = None
        if code is not None:
            hid = Household.create_id(code)
            if app.exists(hid):
                household = app.load(Household, hid)
            else:
                errors.append(RowError(number, columns.get("household_code"),
                                       f"户编号{code}不存在（系统中无此建档立卡户）（NotFound）",
                                       code))
                continue
        else:
            by = r.get("head_id_hash") or r.get("id_hash")
            column = columns.get("head_id_hash" if r.get("head_id_hash") else "id_hash")
            shown = r.get("head_id_masked") or r.get("id_masked")
            found = sorted(set(members.find(by))) if by else []
            if len(found) != 1:
                rule = ("证件号码对应的农户不存在（本账户辖区内无此家庭成员）（NotFound）"
                        if not found else "证件号码属于多户，请填写户编号")
                errors.append(RowError(number, column, rule, shown))
                continue
            household = app.load(Household, found[0])
        hid_text = str(household.id)
        if household.region_path.get(level) != account.region_code:
            errors.append(RowError(number, columns.get("household_code"),
                                   f"农户{household.code}不在本账户（{account.name}）的辖区内",
                                   household.code))
            continue
        try:
            household.check_can_receive(effective_date, p)
        except HouseholdNotRegistered:
            errors.append(RowError(number, columns.get("household_code") or columns.get("name"),
                                   _not_registered_zh(household, effective_date, p),
                                   household.code))
            continue
        village = household.region_path.get("village")
        if village and village not in suspended:
            suspended[village] = app.load(Region, Region.create_id(village)).suspension_of(
                p.code)
        if village and suspended[village]:
            errors.append(RowError(number, None, f"村{village}的“{p.title}”因案件"
                                   f"{suspended[village]}暂停享受（PolicySuspended）", village))
            continue
        if hid_text in seen:
            errors.append(RowError(number, columns.get("household_code") or columns.get("id_hash"),
                                   f"同一农户（{household.code}）在清单中重复：与第{seen[hid_text]}行重复",
                                   household.code))
            continue
        if not r["amount_fen"]:
            errors.append(RowError(number, columns.get("amount_fen"), "发放金额须大于0", "0"))
            continue
        seen[hid_text] = number
        rows.append({"movement_id": str(uuid.uuid4()), "payee_id": hid_text,
                     "amount_fen": r["amount_fen"], "bank_account_hash": r["bank_account_hash"],
                     "holder_id_hash": r["id_hash"], "source_row": number, "reissue_of": None})
    total = sum(r["amount_fen"] for r in rows)
    run.total_fen = total
    run.counts.update({"payees": len(rows), "households": len(seen)})
    if total > account.balance:
        errors.append(RowError(WHOLE_FILE, "合计", f"账户{account.name}余额{yuan(account.balance)}元，"
                               f"不足以支付合计{yuan(total)}元（InsufficientFunds）", yuan(total)))
    run.params.update({"account_name": account.name, "purpose_code": p.code,
                       "purpose_zh": p.title, "balance_fen": account.balance})
    if rows and not errors and not parsed.errors:
        batch_id = str(uuid.uuid4())
        checked = [batch.payment_row(r, i, "household") for i, r in enumerate(rows)]
        run.content = {
            "batch_id": batch_id, "effective_date": effective_date.isoformat(),
            "purpose": p.code, "document_no": document_no.strip(), "payee_kind": "household",
            "row_count": len(rows), "total_fen": total,
            "rows_root": batch.rows_root(batch.PAYMENT_ROW, batch_id, checked),
            "source_file": run.file["filename"][:100], "source_sha256": run.file["sha256"]}
        run.rows = rows
        run.subject = str(account.id)
    return errors


# 回盘 --------------------------------------------------------------------------------
def batch_account(app: Zhuisu, directory: Directory, batch_id: str,
                  account_id: str | None = None) -> FundAccount:
    """The account that ordered ``batch_id`` (the one given, or searched among all)."""
    try:
        bid = str(uuid.UUID(str(batch_id)))
    except ValueError:
        raise InvalidInput("须为批次号（UUID） / must be the batch's UUID", field="batch") from None
    if account_id:
        account = app.load(FundAccount, account_id, "account")
        if bid in account.batches:
            return account
        raise NotFound(f"账户{account.name}没有批次{bid} / no batch {bid} on that account",
                       field="batch")
    directory.catch_up(app)
    for aid in directory.accounts_within(None, None):
        account = app.load(FundAccount, aid)
        if bid in account.batches:
            return account
    raise NotFound(f"没有批次{bid} / no payment batch {bid}", field="batch")


def batch_payments(app: Zhuisu, account: FundAccount, batch_id: str) -> list[dict[str, Any]]:
    """The batch's payments as signed (``domain.batch.payment_row_of``), in row order."""
    out = []
    for e in app.stored_events(account.id):
        if step_name(e) == "FundAccount.Disbursed" and (getattr(e, "batch", None) or {}).get(
                "batch_id") == batch_id:
            _, index, row = batch.payment_row_of(vars(e))
            out.append({**row, "row": index})
    return sorted(out, key=lambda r: r["row"])


def _match(r: Mapping[str, Any], open_rows: dict[str, dict[str, Any]],
           by_source: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    amount = r["amount_fen"]
    for key, field in (("bank_account_hash", "bank_account_hash"), ("id_hash", "holder_id_hash")):
        value = r.get(key)
        if value:
            for p in open_rows.values():
                if p.get(field) == value and p["amount_fen"] == amount:
                    return p
    seq = r.get("seq")
    if seq is not None and seq in by_source:
        return by_source[seq]
    return None


def return_dry_run(run: DryRun, parsed: Parsed, app: Zhuisu, directory: Directory, *,
                   batch_id: str, account_id: str | None, document_no: str | None,
                   effective_date: dt.date) -> list[RowError]:
    """Match a parsed 回盘 to the batch's payments; fill ``run``; answer the row errors."""
    account = batch_account(app, directory, batch_id, account_id)
    bid = str(uuid.UUID(str(batch_id)))
    ordered = account.batches[bid]
    run.region_path = dict(account.region_path)
    if ordered["return_id"] is not None:
        raise InvalidInput(f"批次{bid}的回盘已于此前记录（{ordered['return_id']}） / the batch "
                           "already has its bank return", field="batch")
    if effective_date < ordered["effective_date"]:
        raise InvalidInput(f"回盘日期不能早于批次的发放日期{ordered['effective_date']} / a bank "
                           "return comes after its batch", field="effective_date")
    payments = batch_payments(app, account, bid)
    open_rows = {p["movement_id"]: p for p in payments}
    by_source = {p["source_row"]: p for p in payments if p.get("source_row") is not None}
    answered: dict[str, int] = {}
    columns = parsed.columns
    errors: list[RowError] = []
    returned: list[dict[str, Any]] = []
    credited = credited_fen = 0
    for r in parsed.rows:
        number = r["_row"]
        p = _match(r, open_rows, by_source)
        if p is None:
            errors.append(RowError(number, columns.get("bank_account_hash"),
                                   "回盘行无法对应到本批次的任何一笔发放（银行卡号、证件号码、"
                                   "序号与金额均不符）", r.get("bank_account_masked")))
            continue
        mid = p["movement_id"]
        if mid in answered:
            errors.append(RowError(number, columns.get("bank_account_hash"),
                                   f"该笔发放已由第{answered[mid]}行回盘，同一笔发放只能回盘一次",
                                   r.get("bank_account_masked")))
            continue
        if p["amount_fen"] != r["amount_fen"]:
            errors.append(RowError(number, columns.get("amount_fen"),
                                   f"金额与发放清册不符（清册为{yuan(p['amount_fen'])}元）",
                                   yuan(r["amount_fen"])))
            continue
        answered[mid] = number
        open_rows.pop(mid, None)
        if r["result"] == "ok":
            credited += 1
            credited_fen += p["amount_fen"]
        else:
            returned.append({"of_movement_id": mid, "amount_fen": p["amount_fen"],
                             "reason": str(r.get("failure_reason") or "")[:200],
                             "bank_serial": (r.get("serial") or None) and str(r["serial"])[:64],
                             "source_row": number})
    for p in payments:
        if p["movement_id"] not in answered:
            errors.append(RowError(WHOLE_FILE, None, f"批次第{p['row'] + 1}笔发放（发放清册第"
                                   f"{p.get('source_row') or '?'}行，{yuan(p['amount_fen'])}元）"
                                   "没有回盘结果", None))
    returned_fen = sum(r["amount_fen"] for r in returned)
    run.total_fen = credited_fen + returned_fen
    run.counts.update({"payments": len(payments), "credited": credited,
                       "returned": len(returned)})
    run.params.update({"account_id": str(account.id), "account_name": account.name,
                       "batch_fen": ordered["total_fen"], "credited_fen": credited_fen,
                       "returned_fen": returned_fen})
    if not errors and not parsed.errors:
        return_id = str(uuid.uuid4())
        checked = [batch.return_row(r, i) for i, r in enumerate(returned)]
        run.content = {
            "return_id": return_id, "batch_id": bid,
            "effective_date": effective_date.isoformat(),
            "document_no": ((document_no or "").strip() or f"回盘 {run.file['filename']}")[:100],
            "row_count": len(returned), "returned_fen": returned_fen,
            "credited_count": credited, "credited_fen": credited_fen,
            "rows_root": batch.rows_root(batch.RETURN_ROW, return_id, checked),
            "source_file": run.file["filename"][:100], "source_sha256": run.file["sha256"]}
        run.rows = returned
        run.subject = str(account.id)
    return errors


__all__ = ["payment_dry_run", "return_dry_run", "purpose_code", "batch_account"]
