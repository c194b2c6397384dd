"""The ``zhuisu`` command line: one Typer app gathering every area's commands.

Each module of this package that exposes ``app`` (a ``typer.Typer``) is added: a named one
as a group (``zhuisu token create``), an unnamed one as top-level commands (``zhuisu
serve``).  Adding an area is adding a module — ``cli/projections.py`` with
``app = typer.Typer(name="project")`` gives ``zhuisu project run``.

Commands are adapters like the HTTP routes: parse, call one verb, print.  A refusal prints
``error: <rule> [field]: message`` (``api.problems``) and exits non-zero; user errors never
print a traceback.  Exit codes: 0 done, 1 bad input or environment, 2 refused by a domain
rule or a concurrent write (and usage errors, as usual).

==================================================  ====================================
``serve``, ``demo``                                  ``server``
``token create|list|revoke``                         ``tokens``
``keygen``, ``sign``                                 ``signing``
``draft …``, ``sign --draft`` (签字队列)               ``drafts``
``id`` (a creation step's subject by its code)       ``ids``
``submit``, ``show-household``, ``show-account``     ``store``
``checkpoint``, ``verify``, ``prove``, ``verify-proof``,  ``log``
``log-key``
``alarm show|clear`` (the log's integrity alarm)     ``alarm``
``project run|lag|status|catch-up|rebuild``          ``projections``
``replay``                                           ``replay``
``flags``, ``case show``, ``report``, ``metrics``     ``inspection``
``export`` (台账: the ledgers offices file)           ``exports``
``import roster|payments|returns`` (导入)            ``imports``
``batch list|show|reconcile|proof`` (支付令 对账)     ``batches``
``register import|list|verify``, ``compare models|matches``, ``compare``
``lead list|show|stats|raise|assign|verify|report|review|close|open-case``
(大数据比对, 线索处置)
==================================================  ====================================

May import: ``domain``, ``store``, ``audit``, ``inspection``, ``projections``, ``runtime``,
``access``, ``exchange``, ``console``, and, as the program's entry point, ``api`` (``serve``) and ``demo``.  Nothing
imports this package.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="zhuisu",
    help="追溯 zhuisu: event-sourced audit of poverty-alleviation households and funds.",
    no_args_is_help=True,
    add_completion=False,
    # Never show local variables: they hold private keys, tokens and ID numbers.
    pretty_exceptions_show_locals=False,
)

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _area = getattr(importlib.import_module(f"{__name__}.{_info.name}"), "app", None)
    if isinstance(_area, typer.Typer):
        app.add_typer(_area)
