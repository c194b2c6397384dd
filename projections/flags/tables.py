"""The tables of the flags projection (``projections.flags``): the flags, and what the rules
look back at.

``flags`` holds one row per flag (``{rule_id}:{subject_id}``); ``flag_signers`` who signed
what each flag questions.  The ``flag_*`` tables hold the state the families need, each
kept by its family's module: the log clock (``flag_clock``: ``base``, with the bounds of
``funds`` and ``cases``), accounts' FIFO lots and movements (``funds``), households —
register transitions, members, identification signers, the payments they received,
annual reviews, exit — (``payments``, ``relations``, ``exits``), members and bank accounts
by hash, officials' ID hashes and declared relatives, the preparer/approver pair of every
signed step (``relations``), payments to projects and suppliers for splits
(``payments``), projects' regions, cases and their rectification items (``cases``), and for payment
batches each payee's registered bank account and returned payments, and each bank
account's returned payments (``batches``).
A change to any of them is a change of ``Flags.LAYOUT``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    String,
    Table,
    Text,
)

from projections.tracking import metadata

LEVELS = ("province", "city", "county", "township", "village")

flags = Table(
    "flags", metadata,
    Column("flag_id", Text, primary_key=True),
    Column("rule_id", String(40), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("subject_kind", String(16), nullable=False),
    Column("subject_id", Text, nullable=False),
    Column("region_code", String(32)),
    Column("region_path", JSON, nullable=False),
    *[Column(level, String(32)) for level in LEVELS],  # region_path, searchable by level
    Column("effective_date", Date),
    Column("log_position", BigInteger, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("signers", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("explanation_zh", Text, nullable=False),
    Column("explanation_en", Text, nullable=False),
    Column("withdrawn_position", BigInteger),  # None: standing
)
Index("flags_rule", flags.c.rule_id, flags.c.flag_id)
Index("flags_subject", flags.c.subject_id)
Index("flags_date", flags.c.effective_date)
for _level in LEVELS:
    Index(f"flags_{_level}", flags.c[_level])

flag_signers = Table(  # who signed what a flag questions: an official's liability view
    "flag_signers", metadata,
    Column("official_id", String(36), primary_key=True),
    Column("flag_id", Text, primary_key=True),
)

clock = Table(
    "flag_clock", metadata,
    Column("name", String(8), primary_key=True),
    Column("day", Date),  # the log clock
    Column("idle_bound", Date),  # ≤ idle_since of every account not yet flagged
    Column("due_bound", Date),  # ≤ deadline of every open rectification item not yet flagged
)

accounts = Table(
    "flag_accounts", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("region_path", JSON, nullable=False),
    Column("lots", JSON, nullable=False),  # open FIFO lots (projections.fifo)
    Column("idle_since", Date),
    Column("idle_flagged", Boolean, nullable=False),
)
Index("flag_accounts_idle", accounts.c.idle_flagged, accounts.c.idle_since,
      info={"handlers_need": True})

movements = Table(
    "flag_movements", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("movement_id", String(36), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("payee_kind", String(16)),
    Column("payee_id", Text),
    Column("project_id", String(36)),  # a supplier's
    Column("purpose", String(48), nullable=False),
    Column("effective_date", Date, nullable=False),
)

households = Table(
    "flag_households", metadata,
    Column("household_id", String(36), primary_key=True),
    Column("code", Text),  # None until its application is seen
    Column("region_path", JSON),
    Column("applied_position", BigInteger),
    Column("members", JSON, nullable=False),  # [[id hash, name], …]
    Column("registered", Boolean, nullable=False),  # county approval seen
    Column("id_signers", JSON, nullable=False),  # identification: {official: [[pos, date]]}
    Column("transitions", JSON, nullable=False),  # [[date ISO, status, position], …]
    Column("payments", JSON, nullable=False),  # in log order; see ``PaymentFlags.disbursed``
    Column("reviews", JSON, nullable=False),  # [[year, date ISO, position, income fen], …]
    Column("exit_year", BigInteger),
    Column("exit_line_fen", BigInteger),
    Column("last_exit", JSON),  # [date ISO, position, [signer, …]]
)

members = Table(
    "flag_members", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("household_id", String(36), primary_key=True),
)

bank_accounts = Table(
    "flag_bank_accounts", metadata,
    Column("bank_account_hash", Text, primary_key=True),
    Column("household_id", String(36), nullable=False),  # the first household with it
    Column("code", Text, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)

officials = Table(
    "flag_officials", metadata,
    Column("official_id", String(36), primary_key=True),
    Column("code", Text, nullable=False),
    Column("id_hash", String(64), nullable=False),
    Column("relatives", JSON, nullable=False),  # {id hash: relation}
)
Index("flag_officials_id_hash", officials.c.id_hash, info={"handlers_need": True})

pairs = Table(  # preparer and approver of every signed step that has both
    "flag_pairs", metadata,
    Column("preparer_id", String(36), primary_key=True),
    Column("approver_id", String(36), primary_key=True),
    Column("log_position", BigInteger, primary_key=True),
    Column("step", String(48), nullable=False),
    Column("originator_id", String(36), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("movement_id", String(36)),  # of a payment
    Column("effective_date", Date, nullable=False),
    Column("signers", Text, nullable=False),  # official ids, space-separated
)

split_groups = Table(  # payments below the threshold to a project or supplier, by
    "flag_split_groups", metadata,  # account, payee and purpose (a household's: its row)
    Column("group_key", Text, primary_key=True),  # account|payee kind|payee|purpose
    Column("payments", JSON, nullable=False),  # as households.payments
)

projects = Table(
    "flag_projects", metadata,
    Column("project_id", String(36), primary_key=True),
    Column("region_path", JSON, nullable=False),
)

cases = Table(
    "flag_cases", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("case_no", Text, nullable=False),
    Column("region_path", JSON, nullable=False),
)

rectification = Table(
    "flag_rectification", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("item_id", Text, primary_key=True),
    Column("case_no", Text, nullable=False),
    Column("region_path", JSON, nullable=False),
    Column("deadline", Date, nullable=False),
    Column("official_id", String(36), nullable=False),
    Column("added_position", BigInteger, nullable=False),
    Column("completed_on", Date),
    Column("flagged", Boolean, nullable=False),
)
Index("flag_rectification_due", rectification.c.flagged, rectification.c.deadline,
      info={"handlers_need": True})

payees = Table(  # what the batch rules (``batches``) keep of a payee household
    "flag_payees", metadata,
    Column("household_id", String(36), primary_key=True),
    Column("registered_bank", Text),  # the bank_account_hash it applied with
    Column("failures", JSON, nullable=False),  # its payments returned by the bank, see
)                                               # ``BatchFlags.payment_returned``

bank_failures = Table(  # payments returned by the bank, per bank account hash
    "flag_bank_failures", metadata,
    Column("bank_account_hash", Text, primary_key=True),
    Column("failures", JSON, nullable=False),  # as payees.failures
)
