"""The running process: structured logs, and what follows the log inside a server.

``logging``: one structlog configuration for the HTTP server, the CLI and the libraries
below (JSON in production, every line redacted of secrets, tokens and ID numbers).
``followers``: after each write the server brings the Merkle tree (``audit.tree_store``) and
the read models (``projections.runner``) up to the end of the log and answers with a receipt
under a checkpoint signed for it (batched), signs checkpoints on a timer, and sweeps the
whole log for tampering (``audit.sweep``), raising the integrity alarm (``audit.alarm``).

May import: ``domain``, ``store``, ``audit``, ``inspection`` and ``projections``.
"""
