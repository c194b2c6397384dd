"""What we show: read models rebuilt from the event log, each with its tracking position, so
that a rebuild from zero and an incremental catch-up give identical tables.

One module per read model, each with its tables, a handler per event type and its row in
``projection_tracking``.  May import: ``domain``, ``store``, ``audit`` (replay reads the
log's raw rows) and ``inspection`` (the rules the flags projection applies).

======================================================  ===============================
balances, 资金滞留 (idle since), per account × purpose   ``balances``
资金追溯: FIFO lots and draws, trace down and up          ``money_trace``, ``fifo``, ``walks``
谁签字谁负责 / 谁签字谁追回: every signature, liability    ``responsibility``
traces and responsibility chains as JSON                 ``chains``
建档立卡台账: the household register and region tree      ``register``
red flags (问题线索) kept event by event                  ``flags`` (rules: ``inspection``)
cases' read side: 一案双查 persons, 问责, 追回 per          ``cases``, ``case_queries``
official / unit, 整改 items and overdue
三率一度 timelines and sums                               ``metrics``
what a report reads (for ``inspection.reports``)          ``read_side``
one aggregate as JSON (what adapters show)               ``aggregates``
list endpoints' index of aggregates by region            ``directory``
时间回溯: replay as of a date or a log position           ``replay``
which aggregates a replay reads (by region, household)   ``replay_index``
catch up, rebuild, follow the log, lag                   ``runner``
a changed layout built beside, switched when caught up    ``bluegreen``
one rule's flags again after a threshold change          ``flag_recompute``
tracking rows, layouts, rebuild helpers                  ``tracking``
reading the log; the handler and unit-of-work base       ``events``, ``projection``
balances, register and village queries                   ``queries``
支付令 / 回盘 / 花名册: batches, reconciliation (对账)    ``batches``
======================================================  ===============================
"""
