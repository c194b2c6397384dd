"""How people reach zhuisu: HTTP API, CLI, settings and wiring.  No business rules here."""
