"""The browser viewer of a room filled by a real Blender: display meshes (geometry nodes applied) are
published only while someone watches, and the page draws them where Blender has them.

A real ``blendsync serve`` with auth and an HTTP port, a real Blender process (artist.py) and headless
Chromium (tools/browser.py); checked by the screenshot's pixels.
"""

from __future__ import annotations

import hashlib

import pytest
import trio
from support import ServerProcess, free_port
from test_addon_multiprocess import Artist

from broadcaster.auth import add_user
from broadcaster.client import connect
from tools.browser import CAMERA, CHROMIUM, around, blue, open_browser, project, red


def green(r: int, g: int, b: int) -> bool:
    return g > 120 and g > 2 * r and g > 2 * b


pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")

SCENE = """
import bpy

def cube(name, location, colour, offset=None):
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=location)
    ob = bpy.context.active_object
    ob.name = name
    mat = bpy.data.materials.new(name + "Mat")
    mat.use_nodes = True
    mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (*colour, 1.0)
    ob.data.materials.append(mat)
    if offset is not None:
        group = bpy.data.node_groups.new("Lift", "GeometryNodeTree")
        group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        source = group.nodes.new("NodeGroupInput")
        sink = group.nodes.new("NodeGroupOutput")
        lift = group.nodes.new("GeometryNodeSetPosition")
        lift.inputs["Offset"].default_value = offset
        group.links.new(source.outputs[0], lift.inputs["Geometry"])
        group.links.new(lift.outputs["Geometry"], sink.inputs[0])
        ob.modifiers.new("Lift", "NODES").node_group = group

cube("Red", (-2.0, 0.0, 0.0), (1.0, 0.0, 0.0), offset=(0.0, 0.0, 2.0))
cube("Blue", (2.0, 0.0, 0.0), (0.0, 0.0, 1.0))
"""


async def pump(artist: Artist, quiet: float = 0.4) -> dict:
    await trio.to_thread.run_sync(lambda: artist.call("pump_until_idle", quiet=quiet, timeout=15))
    return await trio.to_thread.run_sync(lambda: artist.call("state"))


async def test_blender_publishes_display_meshes_for_viewers_and_the_page_draws_them(tmp_path):
    tokens = tmp_path / "tokens.toml"
    token = add_user(tokens, "ana")
    http_port = free_port()
    server = ServerProcess(
        tmp_path / "data", extra=["--tokens-file", str(tokens), "--http-port", str(http_port)]
    )
    host, port = server.start()
    ana = Artist("ana", tmp_path)
    try:
        assert (await trio.to_thread.run_sync(lambda: ana.recv(timeout=60))).get("ready")
        await trio.to_thread.run_sync(lambda: ana.call("connect", servers=f"{host}:{port}", token=token))
        await trio.to_thread.run_sync(lambda: ana.call("edit", script=SCENE))
        await trio.to_thread.run_sync(
            lambda: ana.call("create_room", room="shot", keep_open=True, send_scene=True)
        )
        state = await pump(ana)
        # No viewer yet: nothing evaluated, nothing published.
        assert state["display"] == {"published": 0, "evaluated": 0}
        uuids = (
            await trio.to_thread.run_sync(
                lambda: ana.call("eval", expr="{o.name: o['blendsync_uuid'] for o in bpy.data.objects}")
            )
        )["value"]
        async with connect(host, port, name="ana", token=token) as admin:
            await admin.join("shot")
            assert not [k for k in admin.state if k.startswith("view/")]
            share = await admin.admin("share", room="shot")
            await admin.leave()
        async with open_browser(tmp_path / "profile") as page:
            await page.navigate(f"{share['url']}#camera={CAMERA}")
            await page.wait_for("window.blendsyncViewer && blendsyncViewer.firstFrameMs", 90)
            red_cube, blue_cube = uuids["Red"], uuids["Blue"]
            # The viewer joined: Blender sees a member of kind "viewer" and publishes display meshes.
            with trio.fail_after(120):
                while not await page.evaluate(
                    f"['{red_cube}', '{blue_cube}'].every(u => (blendsyncViewer.source(u) || '')"
                    ".startsWith('view:'))"
                ):
                    state = await pump(ana, quiet=0.2)
            assert state["display"]["published"] >= 2
            await trio.sleep(0.5)  # the page eases objects into place
            shot = await page.screenshot()
            (tmp_path / "blender.png").write_bytes(await page.screenshot_png())
            # The geometry nodes offset (+2 in Z) is in what the page draws: the red cube is above its
            # object's origin, not at it.
            assert around(shot, project(shot, (-2.0, 0.0, 2.0)), red), page.log
            assert not around(shot, project(shot, (-2.0, 0.0, 0.0)), red, radius=1)
            assert around(shot, project(shot, (2.0, 0.0, 0.0)), blue)
            # The artist moves the red cube down: the same display mesh, a new transform.
            await trio.to_thread.run_sync(
                lambda: ana.call("edit", script="bpy.data.objects['Red'].location = (-2.0, 0.0, -1.5)\n")
            )
            await pump(ana)
            await page.wait_for(
                f"(p => p && Math.abs(p[2] + 1.5) < 1e-4)(blendsyncViewer.position('{red_cube}'))", 60
            )
            moved = await page.screenshot()
            (tmp_path / "blender-moved.png").write_bytes(await page.screenshot_png())
            assert around(moved, project(moved, (-2.0, 0.0, 0.5)), red)
            assert not around(moved, project(moved, (-2.0, 0.0, 2.0)), red, radius=1)
    finally:
        ana.close()
        server.kill()


TEXTURED = """
import bpy, math
import numpy as np

def paint(img, left, top_right, bottom_right):
    # Each region its colour with noise in its channel: a file too big for one chunk.
    w, h = img.size
    rng = np.random.default_rng(7)
    px = np.ones((h, w, 4), np.float32)
    u = (np.arange(w) + 0.5) / w
    v = (np.arange(h) + 0.5)[:, None] / h
    regions = ((u < 0.5, left), ((u >= 0.5) & (v >= 0.5), top_right), ((u >= 0.5) & (v < 0.5), bottom_right))
    for mask, colour in regions:
        mask = np.broadcast_to(mask, (h, w))
        px[mask, :3] = colour
    strong = px[..., :3] > 0.5
    px[..., :3] = np.where(strong, 0.8 + 0.2 * rng.random((h, w, 3), np.float32), px[..., :3])
    img.pixels.foreach_set(px.ravel())

made = bpy.data.images.new("Made", 512, 512)
paint(made, (1, 0, 0), (0, 0, 1), (0, 1, 0))
made.file_format = "JPEG"
made.save(filepath=JPEG_PATH, quality=90)  # a texture file, as artists have them
bpy.data.images.remove(made)
img = bpy.data.images.load(JPEG_PATH)
img.name = "Checker"
bpy.ops.mesh.primitive_plane_add(size=4.0, location=(0.0, 0.0, 0.0), rotation=(math.pi / 2, 0.0, 0.0))
ob = bpy.context.active_object
ob.name = "Plane"
mat = bpy.data.materials.new("Textured")
mat.use_nodes = True
nodes, links = mat.node_tree.nodes, mat.node_tree.links
tex = nodes.new("ShaderNodeTexImage")
tex.image = img
tex.interpolation = "Closest"
uv = nodes.new("ShaderNodeUVMap")
links.new(uv.outputs["UV"], tex.inputs["Vector"])
links.new(tex.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
ob.data.materials.append(mat)
"""

REPAINT = """
img = bpy.data.images["Checker"]
exec(PAINT)
paint(img, (0, 0, 1), (1, 0, 0), (0, 1, 0))
img.update()
img.update_tag()  # what painting in Blender does
"""


async def test_blender_publishes_a_materials_jpeg_and_the_page_maps_it_and_follows_a_repaint(tmp_path):
    tokens = tmp_path / "tokens.toml"
    token = add_user(tokens, "ana")
    http_port = free_port()
    server = ServerProcess(
        tmp_path / "data", extra=["--tokens-file", str(tokens), "--http-port", str(http_port)]
    )
    host, port = server.start()
    ana = Artist("ana", tmp_path)
    try:
        assert (await trio.to_thread.run_sync(lambda: ana.recv(timeout=60))).get("ready")
        await trio.to_thread.run_sync(lambda: ana.call("connect", servers=f"{host}:{port}", token=token))
        textured = TEXTURED.replace("JPEG_PATH", repr(str(tmp_path / "checker.jpg")))
        await trio.to_thread.run_sync(lambda: ana.call("edit", script=textured))
        await trio.to_thread.run_sync(
            lambda: ana.call("create_room", room="shot", keep_open=True, send_scene=True)
        )
        await pump(ana)
        plane = (
            await trio.to_thread.run_sync(
                lambda: ana.call("eval", expr="bpy.data.objects['Plane']['blendsync_uuid']")
            )
        )["value"]
        async with connect(host, port, name="ana", token=token) as admin:
            share = await admin.admin("share", room="shot")
        async with open_browser(tmp_path / "profile") as page:
            await page.navigate(f"{share['url']}#camera={CAMERA}")
            await page.wait_for("window.blendsyncViewer && blendsyncViewer.firstFrameMs", 90)

            async def textured_with(count: int) -> list[str]:
                with trio.fail_after(120):
                    while True:
                        source = await page.evaluate(f"blendsyncViewer.source('{plane}') || ''")
                        loaded = await page.evaluate("blendsyncViewer.textures()")
                        if source.startswith("view:") and len(loaded) >= count:
                            return loaded
                        await pump(ana, quiet=0.2)

            first = await textured_with(1)
            # The file's own bytes went (a JPEG the browser decodes), not a re-encoding.
            assert first == [hashlib.sha256((tmp_path / "checker.jpg").read_bytes()).hexdigest()]
            await trio.sleep(0.5)
            shot = await page.screenshot()
            (tmp_path / "blender-textured.png").write_bytes(await page.screenshot_png())
            assert around(shot, project(shot, (-1.0, 0.0, 1.0)), red), page.log
            assert around(shot, project(shot, (-1.0, 0.0, -1.0)), red)
            assert around(shot, project(shot, (1.0, 0.0, 1.0)), blue)
            assert around(shot, project(shot, (1.0, 0.0, -1.0)), green)
            # The artist repaints the image (not saved: a PNG of its pixels goes): the page shows it.
            await trio.to_thread.run_sync(
                lambda: ana.call("edit", script=f"PAINT = {TEXTURED.split('made = bpy')[0]!r}\n" + REPAINT)
            )
            loaded = await textured_with(1)
            with trio.fail_after(120):
                while loaded == first:
                    await pump(ana, quiet=0.2)
                    loaded = await page.evaluate("blendsyncViewer.textures()")
            await trio.sleep(0.5)
            shot = await page.screenshot()
            (tmp_path / "blender-repainted.png").write_bytes(await page.screenshot_png())
            assert around(shot, project(shot, (-1.0, 0.0, 1.0)), blue)
            assert around(shot, project(shot, (1.0, 0.0, 1.0)), red)
            assert around(shot, project(shot, (1.0, 0.0, -1.0)), green)
    finally:
        ana.close()
        server.kill()
