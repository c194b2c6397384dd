"""The demo (示范数据): a synthetic county and a year of its business, with planted misconduct.

======================================================  ===============================
the county's shape, officials, households, the plan      ``county``
of the year's signed steps, officials' derived keys
running the plan through ``Zhuisu.execute``; loading the  ``build`` (``build_demo``,
demo into an empty store (``zhuisu serve``)               ``load_demo_if_empty``)
planted misconduct per red-flag rule, the ground truth    ``misconduct``
======================================================  ===============================

Deterministic: the same seed gives the same events.  May import: ``domain``, ``store``
and ``inspection``.  Nothing imports this package but the command line (``zhuisu serve``,
``zhuisu demo``), the tests and the benchmarks.
"""
