"""What we show: read models rebuilt from the event log, each with its tracking position.

One module per read model, each with its tables, a handler per event type and its row in
``projection_tracking``:

- ``balances``: money in, allocated down, paid out, recovered, balance and idle since, per
  account and account × purpose (totals by region subtree and fund source are queries);
- ``money_trace``: FIFO lots and draws, so money is followed from any allocation down to
  every payee and from any payment up to its receipts (attribution rule: ``fifo``);
- ``responsibility``: every signature, and the liability ledger (谁签字谁负责/谁签字谁追回);
- ``register``: the household register, its history and the region tree.

``runner`` catches up, rebuilds, follows the log and reports lag; ``queries`` (balances,
register, villages) and ``chains`` (traces, chains, liability) answer in plain dicts.
"""
