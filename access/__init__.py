"""Who may reach the store, do what and where, and who looked at what.

One table of roles × actions × jurisdiction, shared by every adapter (HTTP, CLI, console):

======================================================  ===============================
roles, what each may do, jurisdiction (region subtree)   ``roles`` (``Principal``,
                                                         ``STEPS_BY_ROLE``)
refusals (RoleNotPermitted, OutsideJurisdiction, …) and  ``errors``
how every adapter reports a refusal (problem)
bearer tokens for machines (shown once, kept as SHA-256)  ``tokens``
the access log: who read which household, case, flag     ``reads`` (``AccessLog``)
hash chains over the access log and token changes        ``chain``
the signing queue (签字队列): drafts waiting for          ``drafts`` (``Drafts``)
signatures, run once when the last arrives
the tables of tokens, access log, idempotency records     ``tables`` (``open_engine``)
======================================================  ===============================

May import: ``domain`` and ``store``.
"""
