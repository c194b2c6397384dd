"""After an accepted write the server answers only once the hash tree and the projections
have caught up with it; a refused write moves neither."""

from __future__ import annotations

from typing import Any

from audit import tree_store
from projections import runner


def region(code: str, level: str, parent: str | None) -> dict[str, Any]:
    return {"code": code, "name": code, "level": level, "parent_code": parent}


def test_a_write_is_in_the_tree_and_the_projections_when_its_answer_arrives(api: Any) -> None:
    assert api.client.post("/regions", json=region("52", "province", None)).status_code == 201
    assert api.client.post("/regions", json=region("5226", "city", "52")).status_code == 201

    head = api.zhuisu.recorder.max_notification_id()
    assert tree_store.tree_state(api.client.app.state.audit).size == 2
    assert all(p["position"] == head and p["lag"] == 0
               for p in runner.lag(api.zhuisu).values())


def test_a_refused_write_leaves_the_followers_where_they_were(api: Any) -> None:
    api.client.post("/regions", json=region("52", "province", None))
    refused = api.client.post("/regions", json=region("5226", "city", "nowhere"))
    assert refused.status_code == 404
    assert tree_store.tree_state(api.client.app.state.audit).size == 1


def test_the_server_signs_a_checkpoint_periodically_when_the_log_grew(api: Any) -> None:
    import time

    from runtime.followers import Followers
    from audit import log

    api.client.post("/regions", json=region("52", "province", None))
    followers = Followers(api.zhuisu, api.client.app.state.audit)
    followers.start_checkpoints(0.05)
    try:
        deadline = time.monotonic() + 10
        while not log.list_checkpoints(followers.audit) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # more periods pass: the log did not grow, so nothing more is signed
    finally:
        followers.stop()
    signed = log.list_checkpoints(followers.audit)
    assert [c.checkpoint.size for c in signed] == [1]
