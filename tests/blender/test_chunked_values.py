"""A mesh larger than one frame travels between real Blender processes through a real ``blendsync serve``
whose max_frame_size is 1 MiB: its arrays go up as chunks, a vertex edit sends only the changed chunk, a late
joiner fetches the chunks it needs and one that has them cached fetches nothing."""

from __future__ import annotations

import pytest
from support import ServerProcess
from test_addon_multiprocess import artists, converge, start_room  # noqa: F401 - artists is a fixture

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

GRID = """
import bmesh
me = bpy.data.meshes.new("GridMesh")
bm = bmesh.new()
bmesh.ops.create_grid(bm, x_segments=299, y_segments=299, size=10.0)
bm.to_mesh(me)
bm.free()
ob = bpy.data.objects.new("Grid", me)
bpy.context.scene.collection.objects.link(ob)
"""
MOVE_ONE_VERTEX = "me = bpy.data.meshes['GridMesh']\nme.vertices[12345].co.z += 2.5\nme.update()\n"
GEOMETRY_BYTES = (
    "len(bpy.data.meshes['GridMesh'].vertices) * 12 + len(bpy.data.meshes['GridMesh'].edges) * 8"
    " + len(bpy.data.meshes['GridMesh'].loops) * 8"
)


@pytest.fixture
def small_frame_server(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text("[server]\nmax_frame_size = 1048576\n")
    process = ServerProcess(tmp_path / "data", extra=["--config", str(config)])
    host, port = process.start()
    try:
        yield f"{host}:{port}"
    finally:
        process.kill()


def sent(artist) -> int:
    return artist.call("eval", expr="session.net.bytes_sent")["value"]


def test_a_mesh_larger_than_a_frame_travels_in_chunks(small_frame_server, artists):  # noqa: F811
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=GRID)
    geometry = ana.call("eval", expr=GEOMETRY_BYTES)["value"]
    assert geometry > 4 * 1048576  # four frames' worth of geometry alone
    start_room(small_frame_server, ana, [ben])
    converge([ana, ben])
    assert ben.call("eval", expr="len(bpy.data.meshes['GridMesh'].vertices)")["value"] == 300 * 300
    fetched = ben.call("eval", expr="session.chunks.stats")["value"]
    assert fetched["fetched_bytes"] >= geometry

    before = sent(ana)
    ana.call("edit", script=MOVE_ONE_VERTEX)
    converge([ana, ben])
    edit_bytes = sent(ana) - before
    assert edit_bytes < 200_000, edit_bytes  # one chunk and the value's hash lists, not the mesh
    assert ben.call("eval", expr="bpy.data.meshes['GridMesh'].vertices[12345].co.z")["value"] == 2.5

    # Ben leaves and joins again: the chunks are in his cache, none is fetched again.
    ben.call("leave")
    fetched = ben.call("eval", expr="session.chunks.stats['fetched']")["value"]
    ben.call("join", room="shot")
    converge([ana, ben])
    assert ben.call("eval", expr="session.chunks.stats['fetched']")["value"] == fetched


EDIT_MODE = (
    "ob = bpy.data.objects['Grid']\n"
    "bpy.context.view_layer.objects.active = ob\n"
    "bpy.ops.object.mode_set(mode='EDIT')\n"
    "import bmesh\n"
    "bm = bmesh.from_edit_mesh(ob.data)\n"
    "bm.verts.ensure_lookup_table()\n"
    "bm.verts[7].co.z = 4.0\n"
    "bmesh.update_edit_mesh(ob.data)\n"
)


def test_edit_mode_is_live_under_a_lease_released_when_the_editor_drops(small_frame_server, artists):  # noqa: F811
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=GRID)
    start_room(small_frame_server, ana, [ben])
    converge([ana, ben])
    ana.call("edit", script=EDIT_MODE)
    ana.call("pump_until_idle", quiet=0.3)
    # Ben sees the vertex while Ana is still in edit mode, and sees that she edits the mesh.
    ben.call("pump_until_idle", quiet=0.3)
    assert ana.call("eval", expr="bpy.data.objects['Grid'].mode")["value"] == "EDIT"
    assert ben.call("eval", expr="bpy.data.meshes['GridMesh'].vertices[7].co.z")["value"] == 4.0
    ana_id = ana.call("eval", expr="session.client_id")["value"]
    assert ben.call("eval", expr="session.editors()")["value"] == {ana_id: ["GridMesh"]}
    # Ben's edit of that mesh's geometry is refused while she holds the lease.
    ben.call("edit", script=MOVE_ONE_VERTEX)
    ben.call("pump_until_idle", quiet=0.3)
    assert any("locked" in m for m in ben.call("state")["messages"])
    # Ana's Blender dies: the server releases her lease, and Ben's next edit goes through.
    ana.proc.kill()
    ana.proc.wait(10)
    ben.call("pump_until_idle", quiet=0.5)
    assert ben.call("eval", expr="session.editors()")["value"] == {}
    before = ben.call("state")
    ben.call("edit", script=MOVE_ONE_VERTEX)
    ben.call("pump_until_idle", quiet=0.3)
    after = ben.call("state")
    assert after["unacked"] == 0 and after["seq"] > before["seq"]  # acknowledged: it is in the room
    assert after["messages"] == before["messages"]  # no new refusal


def chunk_stats(artist) -> dict:
    return artist.call("eval", expr="dict(session.chunks.stats)")["value"]


def test_an_edit_of_a_chunked_mesh_applies_on_the_others_with_no_blob_get(small_frame_server, artists):  # noqa: F811
    """The chunk and list nodes an edit makes new come with its applied (protocol 3): Ben applies the
    edit, in object mode and in Ana's edit mode, without fetching anything."""
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=GRID)
    start_room(small_frame_server, ana, [ben])
    converge([ana, ben])
    joined = chunk_stats(ben)
    assert joined["fetched"] > 0 and joined["pushed"] == 0  # a joiner fetches what the snapshot names

    ana.call("edit", script=MOVE_ONE_VERTEX)
    converge([ana, ben])
    moved = chunk_stats(ben)
    assert ben.call("eval", expr="bpy.data.meshes['GridMesh'].vertices[12345].co.z")["value"] == 2.5
    assert moved["fetched"] == joined["fetched"]
    assert 0 < moved["pushed_bytes"] - joined["pushed_bytes"] < 200_000  # a chunk and its nodes

    ana.call("edit", script=EDIT_MODE)
    ana.call("pump_until_idle", quiet=0.3)
    ben.call("pump_until_idle", quiet=0.3)
    assert ana.call("eval", expr="bpy.data.objects['Grid'].mode")["value"] == "EDIT"
    assert ben.call("eval", expr="bpy.data.meshes['GridMesh'].vertices[7].co.z")["value"] == 4.0
    edited = chunk_stats(ben)
    assert edited["fetched"] == joined["fetched"] and edited["pushed"] > moved["pushed"]
