"""台账 in and out: the ledgers offices file, built from the read models, as .xlsx and CSV.

A ledger (台账) is laid out the way county and township offices keep theirs by hand
(DESIGN.md §7): Chinese headers, a title row, 填报单位 (the region's name and code) and
填报日期, a 合计 row, amounts in 元 with two decimals computed from integer fen with
``Decimal`` (万元 in summaries), ID and bank numbers as text cells and masked, column
widths set and the header row frozen; beside each workbook a machine-readable CSV (UTF-8
with a BOM, the same columns plus the raw fen).  Every ledger is built from the queries of
``projections`` (flags, cases, balances, chains, aggregate views), so it shows what the
HTTP API and the console show; each says which subjects it shows, for the access log.
The three adapters reach them alike: ``GET /exports/{ledger}`` (``api.routes.exports``),
``zhuisu export`` (``cli.exports``) and the console's 台账 screen (``console.screens.exports``).

======================================================  ===============================
the catalogue of ledgers and ``build``; 问题线索台账,      ``ledgers``
整改台账 (已整改 / 持续整改 / 未整改), 扶贫资金总台账
(下达 / 分配 / 支付, 支出进度)
发放清册 (payments to households), 一户一档               ``households``
what a ledger reads: the read models, the region, the     ``sources``
reader's jurisdiction and role, the names of signers
the layout: sheets, columns, 元 and 万元 from fen, text    ``layout``
cells, masking (脱敏), .xlsx and CSV, reading a CSV back
Chinese names of rules, steps, statuses, fund sources      ``labels``
imports (导入): 花名册, 发放清册, 回盘 → dry run, 错误清单,    ``imports``, ``imports_roster``,
a draft of the signing queue                              ``imports_money``,
                                                          ``imports_common``
======================================================  ===============================

May import: ``domain``, ``store``, ``inspection``, ``projections`` and ``access``.
Imported by the adapters: ``api``, ``cli`` and ``console``.
"""
