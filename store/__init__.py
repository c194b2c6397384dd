"""Where everything is kept: the one database URL, engines, schemas, settings, bulk append.

Written once, used by every layer: nothing else parses a database URL, creates an engine or
decides how tables are created.  SQLite file (the embedded default) or PostgreSQL, chosen by
one setting, ``ZHUISU_DATABASE_URL``.  May import: ``domain``.

=====================================================  ==================================
the database URL → SQLAlchemy URL, schema; the URL of   ``urls``
an application
URL → engine (profiles: read models, tables, audit)     ``engines`` (``engine_for``,
                                                        ``new_engine``, ``writer``)
creating tables once, whoever starts first              ``schema`` (``create_tables``)
settings from ``ZHUISU_*``, the event store's settings,  ``settings`` (``Settings``,
the ID pepper, building the application                 ``build_app``)
appending already-verified events in bulk (COPY)        ``bulk`` (``append_verified``)
=====================================================  ==================================
"""
