"""Session ids bound to their users on every node of a cluster of real OS processes (docs/security.md)."""

from __future__ import annotations

from typing import Any

import pytest
from test_share_links_cluster import SharingCluster

from broadcaster.auth import add_user
from broadcaster.client import ServerError, connect


class ArtistsCluster(SharingCluster):
    """Every node with the same users: root (admin), ana and ben."""

    users: dict[str, str]

    def command(self, i: int, join: bool = False, **options: Any) -> list[str]:
        out = super().command(i, join, **options)
        if i == min(self.ids) and not getattr(self, "users", None):  # before the others copy the file
            tokens = self.nodes[i].root / "tokens.toml"
            self.users = {name: add_user(tokens, name) for name in ("ana", "ben")}
        return out


async def test_a_session_id_used_on_one_node_is_refused_to_another_user_on_every_node(tmp_path):
    # Each node knew only the ids it had seen: ben, who sees ana's session id in the room, took it on
    # another node, showed as her, and took her op_ids (one of her writes was acknowledged and lost).
    async with ArtistsCluster(tmp_path / "cluster", 3) as cluster:
        await cluster.leader()
        session = "ana-session-0003"
        async with connect(*cluster.address(1), name="ana", token=cluster.users["ana"], session=session):
            for i in (1, 2, 3):
                with pytest.raises(ServerError) as info:
                    async with connect(*cluster.address(i), token=cluster.users["ben"], session=session):
                        pass
                assert info.value.code == "forbidden" and info.value.fatal, i
        async with connect(*cluster.address(3), token=cluster.users["ana"], session=session) as again:
            assert again.client_id == session  # her own, on any node
