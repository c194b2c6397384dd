"""What discipline inspection (纪检监察) asks: what counts as a red flag and why, how the
三率一度 are defined, and what its reports show.

Pure knowledge over plain values: no database.  The read models that keep these up to date
event by event are in ``projections`` (``projections.flags`` applies the rules here;
``projections.cases`` and ``projections.case_queries`` are the cases' read side;
``projections.metrics`` sums the 三率一度); the case procedure itself (一案双查, 问责,
追回, 整改) is the ``domain.case`` aggregate.  May import: ``domain``.

=====================================================  ==================================
the red-flag catalogue (问题线索): ids, severity,       ``rules`` (``RULES``,
中文/English explanations, thresholds (ZHUISU_FLAG_*)    ``RuleSettings``)
each rule family's decision: payments to removed or     ``rules.<family>`` (see
exited households, duplicates, 拆分支付; 优亲厚友; idle   ``rules``' docstring)
funds (资金滞留); backdating; 数字脱贫; overdue 整改
三率一度: 贫困发生率, 错退率, 漏评率, 群众认可度          ``assessment``
检查报告: what case and county reports show (laid     ``reports`` (built from
out as .xlsx and CSV by ``exchange.reports``)           ``projections.read_side``)
=====================================================  ==================================
"""
