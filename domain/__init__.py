"""What is true: aggregates, events, value objects and the rules they enforce.

Nothing in this package does I/O, reads a clock or draws randomness; record time, ids and
key material come in from the caller.  May import: nothing of zhuisu (only the standard
library, ``eventsourcing`` and ``cryptography``).

Where each rule of the seeds lives:

==============================================  ============================================
精准识别 申请 → 民主评议 → 公示 → 乡镇审核 → 县级审批  ``household`` (``Household``: the procedure)
两不愁三保障, 脱贫退出, 清退, 返贫, 帮扶责任人         ``household`` (exit checks, removal, relapse)
资金下达, 拨付, 发放到户, 追回, 冲正, 村账乡代管       ``fund_account`` (``FundAccount``)
fen, 资金来源, 用途 and the 负面清单                  ``money``
项目 审批, 受益户, 验收                              ``project``
签字: what is signed, canonical JSON, Ed25519       ``signing``
谁签字谁负责: who may sign which step where          ``authorisation``, ``positions``
干部: positions over time, keys, declared relatives  ``official``
省 → 市 → 县 → 乡镇 → 村, units, population          ``region``
公民身份号码: check digit, keyed hash                 ``identity``
案件, 一案双查, 问责, 谁签字谁追回 (the split), 整改,    ``case`` (``Case``; ``split_liability``)
政策暂停 (policy suspension), 满意度调查
the verbs every adapter calls, the step catalogue   ``application`` (``Zhuisu``, ``STEPS``)
refusals named after their rule                     ``errors``
the door's bounds: business-date windows            ``limits``
(2013-01-01 to record date + 1 day; deadlines
+ 5 years), lengths of names, codes and texts
the aggregate cache, one lock per aggregate         ``repository``
(concurrent commands)
==============================================  ============================================
"""
