"""The HTTP API in tests: an app on a test store, tokens for any role and region.

``api_on(zhuisu)`` starts the HTTP app on an application (its tables go in the same
database) and yields an :class:`Api`: its ``client`` sends an all-regions administrator's
token unless told otherwise; ``api.as_(role, region)`` is a caller with its own token.
The ``api`` and ``admin_token`` fixtures of ``conftest.py`` wrap this for the ``app``
fixture (both stores).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from api.http import create_app
from access.roles import ApiRole
from access.tokens import Tokens
from domain.application import Zhuisu

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def refused(response: Any, status: int, rule: str, field: str | None = None) -> dict[str, Any]:
    """The problem+json body of a refusal, checked: status, rule and (when given) field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["rule"] == rule, body
    if field is not None:
        assert body["field"] == field, body
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Caller:
    """Sends every request with one token (and any other headers given)."""

    client: TestClient
    token: str

    def request(self, method: str, url: str, headers: dict[str, str] | None = None,
                **kw: Any) -> Any:
        return self.client.request(method, url, headers={**bearer(self.token), **(headers or {})},
                                   **kw)

    def get(self, url: str, **kw: Any) -> Any:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.request("POST", url, **kw)


@dataclass
class Api:
    client: TestClient  # sends ``admin_token`` by default
    zhuisu: Zhuisu
    admin_token: str

    @property
    def tokens(self) -> Tokens:
        return self.client.app.state.tokens  # type: ignore[attr-defined]

    def token(self, role: ApiRole | str, region: str | None = None,
              name: str | None = None) -> str:
        """A new token for ``role`` bound to ``region``'s subtree (None: every region)."""
        where = self.zhuisu.region(region) if region else None
        token, _ = self.tokens.create(name=name or f"{ApiRole(role).value}@{region or 'all'}",
                                      role=role, region=where, created_by="test", now=NOW)
        return token

    def as_(self, role: ApiRole | str, region: str | None = None,
            name: str | None = None) -> Caller:
        return Caller(self.client, self.token(role, region, name))

    def anonymous(self, method: str, url: str, **kw: Any) -> Any:
        return self.client.request(method, url, headers={"Authorization": ""}, **kw)


@contextmanager
def api_on(zhuisu: Zhuisu, **create_options: Any) -> Iterator[Api]:
    app = create_app(zhuisu=zhuisu, bootstrap_admin=False, **create_options)
    with TestClient(app) as client:
        tokens: Tokens = app.state.tokens
        admin, _ = tokens.create(name="test admin", role=ApiRole.ADMIN, region=None,
                                 created_by="test", now=NOW)
        client.headers["Authorization"] = f"Bearer {admin}"
        yield Api(client, zhuisu, admin)
