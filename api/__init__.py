"""The HTTP API (FastAPI): routes, dependencies, schemas, security, problems.  No business
rules here: each route parses, checks who may do it (``access.roles``), calls one verb of
the application or one query of the read models, and answers.

======================================================  ===============================
the app: routers, middleware, start-up and shutdown      ``http`` (``create_app``)
one router per area (commands, ids, households,          ``routes.<area>``
accounts, officials, regions, cases, flags, traces,
views, replay, metrics, exports (台账), log, access log,
health)
what a route may depend on: app, caller, page            ``deps``
refusals → RFC 9457 problem+json                         ``problems``
idempotency keys on writes                               ``idempotency``
one log line per request, request id, caller             ``middleware``
the request size limit (413 before authentication)       ``limits``
shared response models                                   ``schemas``
======================================================  ===============================

May import: ``domain``, ``store``, ``audit``, ``inspection``, ``projections``, ``runtime``,
``access``, ``exchange`` (the ledgers of ``GET /exports``) and ``console`` (which it mounts).  Nothing imports this package but the command line's ``zhuisu serve``.
"""
