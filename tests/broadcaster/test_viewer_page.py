"""The browser viewer in real headless Chromium (WebGL on SwiftShader) against a real server: what it draws,
checked by the screenshot's pixels, and what it says when its link is refused.

The room is a recorded one, written through the client library with the add-on's value encodings
(docs/addon.md, docs/values.md); tests/blender/test_viewer_blender.py fills one from real Blender.
"""

from __future__ import annotations

import array
import base64
import hashlib
import importlib.util
import json
import math
import random
import struct
import zlib
from contextlib import asynccontextmanager
from pathlib import Path

import msgpack
import pytest
import trio

from broadcaster.app import open_broadcaster
from broadcaster.auth import add_user
from broadcaster.client import connect
from broadcaster.config import ServerConfig
from tools.browser import CAMERA, CHROMIUM, around, blue, open_browser, project, red

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def _addon_chunks():
    """The add-on's chunk encoder, blender_addon/sync/chunks.py, loaded on its own: it needs only the
    standard library and msgpack, while importing it through its package would start bpy."""
    path = Path(__file__).resolve().parents[2] / "blender_addon" / "sync" / "chunks.py"
    spec = importlib.util.spec_from_file_location("addon_chunks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chunks = _addon_chunks()


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def f32(values) -> bytes:
    return array.array("f", values).tobytes()


def i32(values) -> bytes:
    return array.array("i", values).tobytes()


CUBE_VERTICES = [c for z in (-1, 1) for y in (-1, 1) for x in (-1, 1) for c in (x, y, z)]
CUBE_FACES = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]


def cube_geometry(size: float = 0.5, unused: int = 0, first: int = 0) -> dict:
    """A cube's base mesh (mesh/<u>/geometry), with ``unused`` vertices no face uses after its eight, their
    coordinates counting from ``first`` (so that no two chunks are alike): as long as a test wants it."""
    unused_coordinates = [float(first + i) for i in range(3 * unused)]
    return {
        "vertices": f32([v * size for v in CUBE_VERTICES] + unused_coordinates),
        "edges": b"",
        "face_starts": i32([0, 4, 8, 12, 16, 20]),
        "corner_verts": i32([i for face in CUBE_FACES for i in face]),
        "corner_edges": b"",
        "attributes": [],
    }


def cube(obj: str, mesh: str, mat: str, location: list[float], colour: list[float], size=0.5) -> list:
    """The keys an add-on writes for a cube with one material (docs/addon.md, "Keys")."""
    return [
        ["set", f"mat/{mat}/meta", pack({})],
        ["set", f"mat/{mat}/set/diffuse_color", pack([*colour, 1.0])],
        ["set", f"mesh/{mesh}/meta", pack({"materials": [mat]})],
        ["set", f"mesh/{mesh}/geometry", pack(cube_geometry(size))],
        ["set", f"obj/{obj}/meta", pack({"type": "MESH", "data_kind": "mesh", "data": mesh})],
        ["set", f"obj/{obj}/location", pack(location)],
        ["set", f"obj/{obj}/scale", pack([1.0, 1.0, 1.0])],
    ]


async def studio(tmp_path: Path):
    tokens = tmp_path / "tokens.toml"
    return tokens, add_user(tokens, "ana", "user")


@asynccontextmanager
async def server_and_ana(tmp_path: Path, **settings):
    """A server with users and an HTTP port (``settings``: more ServerConfig fields), and Ana connected."""
    tokens, ana_token = await studio(tmp_path)
    config = ServerConfig(
        host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens, **settings
    )
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana", token=ana_token) as ana:
            yield b, ana


@asynccontextmanager
async def ana_on_a_server(tmp_path: Path):
    async with server_and_ana(tmp_path) as (_, ana):
        yield ana


@asynccontextmanager
async def viewing(ana, room: str, tmp_path: Path):
    """A page on a new share link of ``room``, from the test camera, once it drew its first frame."""
    share = await ana.admin("share", room=room)
    async with open_browser(tmp_path / "profile") as page:
        await page.navigate(f"{share['url']}#camera={CAMERA}")
        await page.wait_for("window.blendsyncViewer && blendsyncViewer.firstFrameMs", 90)
        yield page


async def red_and_blue_cubes(ana) -> tuple[str, str]:
    """A red cube at (-2, 0, 0) and a blue one at (2, 0, 1.5), in the joined room: their objects' uuids."""
    red_cube, blue_cube = "a" * 32, "d" * 32
    await ana.batch(cube(red_cube, "b" * 32, "c" * 32, [-2.0, 0.0, 0.0], [1.0, 0.0, 0.0]))
    await ana.batch(cube(blue_cube, "e" * 32, "f" * 32, [2.0, 0.0, 1.5], [0.0, 0.0, 1.0]))
    return red_cube, blue_cube


async def test_the_page_draws_the_room_where_it_is_in_its_colours_and_follows_a_move(tmp_path):
    async with ana_on_a_server(tmp_path) as ana:
        await ana.create_room("shot/010 #1", keep_open=True)
        await ana.join("shot/010 #1")
        red_cube, _ = await red_and_blue_cubes(ana)
        async with viewing(ana, "shot/010 #1", tmp_path) as page:
            assert await page.evaluate("blendsyncViewer.objectCount()") == 2, page.log
            shot = await page.screenshot()
            (tmp_path / "before.png").write_bytes(await page.screenshot_png())
            assert around(shot, project(shot, (-2.0, 0.0, 0.0)), red)
            assert around(shot, project(shot, (2.0, 0.0, 1.5)), blue)
            assert not around(shot, project(shot, (0.0, 0.0, -2.0)), red, radius=1)  # background
            # An artist moves the red cube: it glides there (the page eases between updates).
            await ana.set(f"obj/{red_cube}/location", pack([0.0, 0.0, -1.5]))
            await page.wait_for(
                f"(p => p && Math.abs(p[2] + 1.5) < 1e-4 && Math.abs(p[0]) < 1e-4)"
                f"(blendsyncViewer.position('{red_cube}'))",
                30,
            )
            moved = await page.screenshot()
            (tmp_path / "after.png").write_bytes(await page.screenshot_png())
            assert around(moved, project(moved, (0.0, 0.0, -1.5)), red)
            assert not around(moved, project(moved, (-2.0, 0.0, 0.0)), red, radius=1)
            assert around(moved, project(moved, (2.0, 0.0, 1.5)), blue)


async def test_an_expired_or_revoked_link_says_so_on_the_page(tmp_path):
    async with ana_on_a_server(tmp_path) as ana:
        await ana.create_room("r", keep_open=True)
        share = await ana.admin("share", room="r")
        await ana.admin("revoke_share", name=share["name"])
        async with open_browser(tmp_path / "profile") as page:
            await page.navigate(share["url"])
            await page.wait_for("window.blendsyncViewer && blendsyncViewer.status === 'expired'", 90)
            text = await page.evaluate(
                "document.getElementById('message').hidden ? '' : "
                "document.getElementById('message').textContent"
            )
            assert text == "This link has expired or was revoked."


def view_matrix(eye, target, up=(0.0, 0.0, 1.0)) -> list[float]:
    """A world-to-view matrix looking from ``eye`` at ``target``, column-major (presence view_matrix)."""

    def sub(a, b):
        return [a[i] - b[i] for i in range(3)]

    def cross(a, b):
        return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]

    def unit(a):
        n = math.sqrt(sum(c * c for c in a))
        return [c / n for c in a]

    f = unit(sub(target, eye))
    s = unit(cross(f, up))
    u = cross(s, f)
    rows = [s, u, [-c for c in f]]
    t = [-sum(rows[r][i] * eye[i] for i in range(3)) for r in range(3)]
    return [rows[0][0], rows[1][0], rows[2][0], 0.0, rows[0][1], rows[1][1], rows[2][1], 0.0,
            rows[0][2], rows[1][2], rows[2][2], 0.0, t[0], t[1], t[2], 1.0]  # fmt: skip


def green(r: int, g: int, b: int) -> bool:
    return g > 150 and g > 2 * r and g > 2 * b


async def test_artists_show_as_frustums_with_their_selection_and_the_page_follows_a_view(tmp_path):
    async with ana_on_a_server(tmp_path) as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        _, blue_cube = await red_and_blue_cubes(ana)
        # Ana looks down at the red cube from the front and has the blue one selected; she is green.
        await ana.presence(
            name="ana",
            color=[0.0, 1.0, 0.0],
            frame=42,
            view_matrix=view_matrix([-2.0, -3.0, 1.5], [-2.0, 0.0, 0.0]),
            selection=[blue_cube],
        )
        async with viewing(ana, "r", tmp_path) as page:
            await page.wait_for("document.getElementById('artists').textContent.includes('frame 42')", 30)
            shot = await page.screenshot()
            (tmp_path / "artists.png").write_bytes(await page.screenshot_png())
            greens = shot.find(green)
            # Her frustum, at her eye (above and in front of the red cube), in her colour ...
            ex, ey = project(shot, (-2.0, -3.0, 1.5))
            assert any(abs(x - ex) < 40 and abs(y - ey) < 40 for x, y in greens), page.log
            # ... and a box in her colour around what she selected (the blue cube's corners).
            bx, by = project(shot, (2.5, -0.5, 2.0))
            assert any(abs(x - bx) < 8 and abs(y - by) < 8 for x, y in greens)
            # Following her: the page looks from where she looks, at the red cube, from above.
            await page.evaluate(f"blendsyncViewer.follow({ana.client_id!r})")
            await trio.sleep(0.3)
            followed = await page.screenshot()
            (tmp_path / "follow.png").write_bytes(await page.screenshot_png())
            assert around(followed, (followed.width // 2, followed.height // 2), red)


async def test_the_page_keeps_its_connection_alive_while_the_room_streams(tmp_path):
    # A viewer has nothing to say, and the server never pings a client it is busy sending to: without
    # its own pings the page would be cut after heartbeat_timeout.
    async with server_and_ana(tmp_path, heartbeat_interval=0.3, heartbeat_timeout=1.5) as (_, ana):
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        share = await ana.admin("share", room="r")
        async with open_browser(tmp_path / "profile") as page:
            await page.navigate(share["url"])
            await page.wait_for("window.blendsyncViewer && blendsyncViewer.status === 'connected'", 90)
            for i in range(60):  # 6 s of a stream with no gap the server would fill with a ping
                await ana.set("obj/x/location", pack([float(i), 0.0, 0.0]))
                await trio.sleep(0.1)
            assert await page.evaluate("blendsyncViewer.connections()") == 1
            assert await page.evaluate("blendsyncViewer.status") == "connected"


# Twenty connections of the page's own code, opened in one tick as pages are when a server restart makes
# them all reconnect. For each: when it joined, when it first pinged, and when it reconnected after all
# were closed at once (``together.drop()``).
OPEN_TOGETHER = """
window.together = { joined: {}, pinged: {}, restarted: {}, droppedAt: null };
import("/viewer/connection.js").then(({ RoomConnection }) => {
  const room = decodeURIComponent(location.pathname.slice("/view/".length));
  const token = new URLSearchParams(location.search).get("token");
  const none = () => {};
  const connections = [];
  for (let i = 0; i < 20; i++) {
    const c = new RoomConnection({
      url: `ws://${location.host}/ws`, room, token, onStatus: none, onReset: none, onItems: none,
      onBlob: none, onClients: none, onClient: none, onClientLeft: none,
      // When its join_room went out (what the page's ping waits from), not when the answer came back: a
      // loaded server's answer would make the gap look shorter than it is.
      onJoined: () => { if (!(i in together.joined)) together.joined[i] = c.lastSent; },
    });
    connections.push(c);
  }
  connections.forEach((c) => c.start());
  setInterval(() => {
    const now = performance.now();
    connections.forEach((c, i) => {
      if (c.nonce && !(i in together.pinged)) together.pinged[i] = now;
      if (c.connections === 2 && !(i in together.restarted)) together.restarted[i] = now;
    });
  }, 5);
  together.drop = () => {
    together.droppedAt = performance.now();
    for (const c of connections) {
      c.retry = 2; // seconds before the first try, as after a few failed ones
      c.ws.close();
    }
  };
});
"""


async def test_pages_that_connect_together_ping_and_reconnect_out_of_step(tmp_path):
    # Hundreds of pages pinging in step would reach the server as one burst, with artists' edits
    # waiting behind it. Each page starts its ping checks at a random point of their period (half the
    # heartbeat interval: 0.5 s here), and waits a random share of its backoff before reconnecting.
    async with server_and_ana(tmp_path, heartbeat_interval=1.0, heartbeat_timeout=5.0) as (_, ana):
        await ana.create_room("r", keep_open=True)
        share = await ana.admin("share", room="r")
        async with open_browser(tmp_path / "profile") as page:
            await page.navigate(share["url"])
            await page.wait_for("window.blendsyncViewer && blendsyncViewer.status === 'connected'", 90)
            await page.evaluate(OPEN_TOGETHER)
            count = "(o) => Object.keys(o).length === 20"
            await page.wait_for(f"window.together && ({count})(together.pinged)", 30)
            times = await page.evaluate("together")
            after_join = [times["pinged"][i] - times["joined"][i] for i in map(str, range(20))]
            # In step, every first ping would come 0.9 s after its join_room went out, give or take the 5 ms
            # polling; out of step, 0.9 to 1.4 s.
            assert min(after_join) >= 850, after_join
            assert max(after_join) - min(after_join) > 200, after_join
            await page.evaluate("together.drop()")
            await page.wait_for(f"({count})(together.restarted)", 30)
            times = await page.evaluate("together")
            after_drop = [times["restarted"][str(i)] - times["droppedAt"] for i in range(20)]
            # Between half the backoff (2 s) and all of it, each: in step, they would all come at 2 s.
            assert min(after_drop) >= 950, after_drop
            assert max(after_drop) - min(after_drop) > 300, after_drop


def png(width: int, height: int, colour_at) -> bytes:
    """An RGBA PNG, stored without compression (so it is large enough to travel in chunks);
    ``colour_at(u, v)`` with (0, 0) the bottom left, as Blender's UVs."""
    rows = b""
    for y in range(height):
        v = (height - 1 - y + 0.5) / height  # PNG rows go top first
        rows += b"\0" + b"".join(bytes([*colour_at((x + 0.5) / width, v), 255]) for x in range(width))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 0)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


CHUNK_BYTES = 64 * 1024


async def chunked(client, data: bytes) -> tuple[msgpack.ExtType, list[bytes]]:
    """``data`` as the add-on sends a long byte string: chunks stored as blobs, named by an extension
    (docs/values.md, "Chunked byte strings"); returns it and the blobs a set must reference."""
    hashes = [await client.put_blob(data[i : i + CHUNK_BYTES]) for i in range(0, len(data), CHUNK_BYTES)]
    return msgpack.ExtType(7, len(data).to_bytes(8, "big") + b"".join(hashes)), hashes


def grid(cells: int) -> tuple[list[tuple[float, float]], list[int]]:
    """UVs of a (cells + 1)^2 grid of vertices over the unit square and its triangles' indices."""
    uvs = [(i / cells, j / cells) for j in range(cells + 1) for i in range(cells + 1)]
    indices = []
    for j in range(cells):
        for i in range(cells):
            a = j * (cells + 1) + i
            indices += [a, a + 1, a + cells + 2, a, a + cells + 2, a + cells + 1]
    return uvs, indices


def textured_plane(obj: str, mesh: str, mat: str, x: float = 0.0, half: float = 2.0, cells: int = 1) -> list:
    """A square plane facing -Y (towards CAMERA) centred on (x, 0, 0), its display mesh (a grid of
    ``cells`` x ``cells`` squares) with UVs (0, 0) at its bottom left."""
    uvs, indices = grid(cells)
    display = {
        "format": 1,
        "hash": f"plane{cells}",
        "positions": f32([c for u, v in uvs for c in (x - half + 2 * half * u, 0.0, -half + 2 * half * v)]),
        "normals": f32([0.0, -1.0, 0.0] * len(uvs)),
        "indices": array.array("I", indices).tobytes(),
        "groups": [[0, len(indices), 0]],
        "uvs": f32([c for uv in uvs for c in uv]),
    }
    return [
        ["set", f"mesh/{mesh}/meta", pack({"materials": [mat]})],
        ["set", f"obj/{obj}/meta", pack({"type": "MESH", "data_kind": "mesh", "data": mesh})],
        ["set", f"obj/{obj}/location", pack([0.0, 0.0, 0.0])],
        ["set", f"view/{obj}/mesh", display],
    ]


async def sent_as_the_add_on_does(client, ops: list) -> list:
    """Ops whose values are still documents packed, their byte strings past a chunk sent as chunks."""
    out = []
    for op in ops:
        if op[0] != "set" or isinstance(op[2], bytes):
            out.append(op)
            continue
        doc, refs = dict(op[2]), []
        for name, value in doc.items():
            if isinstance(value, bytes) and len(value) > CHUNK_BYTES:
                doc[name], hashes = await chunked(client, value)
                refs += hashes
        out.append(["set", op[1], pack(doc), refs] if refs else ["set", op[1], pack(doc)])
    return out


def material_summary(
    data, image: bytes, size: int = 160, uv_transform=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
) -> dict:
    """A material's summary (docs/values.md) mapping ``image`` (of ``size`` pixels a side), its
    ``data`` as given (the image, or an extension naming its chunks)."""
    return {
        "base_color": [0.8, 0.8, 0.8],
        "metallic": 0.0,
        "roughness": 0.5,
        "emission": [0.0, 0.0, 0.0],
        "base_color_image": {
            "hash": hashlib.sha256(image).hexdigest(),
            "width": size,
            "height": size,
            "data": data,
            "linear": False,
            "extension": "REPEAT",
            "interpolation": "Closest",
            "uv_transform": list(uv_transform),
        },
    }


async def textured_material(
    client, mat: str, image: bytes, uv_transform=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
) -> list:
    data, hashes = await chunked(client, image)
    return ["set", f"view/{mat}/material", pack(material_summary(data, image, 160, uv_transform)), hashes]


RED, BLUE, GREEN = (230, 0, 0), (0, 0, 230), (0, 200, 0)


def quadrants(size: int = 160) -> bytes:
    """A square image: left half red; right half blue above, green below (a flip either way shows)."""
    return png(size, size, lambda u, v: RED if u < 0.5 else BLUE if v >= 0.5 else GREEN)


async def shows_quadrants(page, image: bytes, plane: str, source: str, saved: Path) -> None:
    """Once ``image`` is among the page's textures, the 4 x 4 plane facing CAMERA shows it as ``quadrants``
    paints it, drawn from ``source``."""
    sha = hashlib.sha256(image).hexdigest()
    await page.wait_for(f"blendsyncViewer.textures().includes('{sha}')", 30)
    await trio.sleep(0.3)  # a frame drawn with it
    assert await page.evaluate(f"blendsyncViewer.source('{plane}')") == source
    shot = await page.screenshot()
    saved.write_bytes(await page.screenshot_png())
    assert around(shot, project(shot, (-1.0, 0.0, 1.0)), red), page.log
    assert around(shot, project(shot, (-1.0, 0.0, -1.0)), red)
    assert around(shot, project(shot, (1.0, 0.0, 1.0)), blue)
    assert around(shot, project(shot, (1.0, 0.0, -1.0)), green)


async def test_the_page_maps_a_materials_image_and_follows_a_new_one(tmp_path):
    async with ana_on_a_server(tmp_path) as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        plane, mat = "a" * 32, "c" * 32
        first = quadrants()
        assert len(first) > CHUNK_BYTES  # it travels in chunks the page fetches as blobs
        # A fine grid: its display mesh's arrays travel in chunks too.
        mesh = await sent_as_the_add_on_does(ana, textured_plane(plane, "b" * 32, mat, cells=80))
        assert len(mesh[-1]) == 4
        await ana.batch([*mesh, await textured_material(ana, mat, first)])
        async with viewing(ana, "r", tmp_path) as page:
            await shows_quadrants(page, first, plane, "view:plane80", tmp_path / "textured.png")
            # The artist changes the image: the page shows the new one.
            second = png(160, 160, lambda u, v: BLUE if u < 0.5 else RED if v >= 0.5 else GREEN)
            await ana.batch([await textured_material(ana, mat, second)])
            sha = hashlib.sha256(second).hexdigest()
            await page.wait_for(f"blendsyncViewer.textures().includes('{sha}')", 30)
            await trio.sleep(0.3)
            changed = await page.screenshot()
            (tmp_path / "retextured.png").write_bytes(await page.screenshot_png())
            assert around(changed, project(changed, (-1.0, 0.0, 1.0)), blue)
            assert around(changed, project(changed, (1.0, 0.0, 1.0)), red)
            assert around(changed, project(changed, (1.0, 0.0, -1.0)), green)


async def test_a_uv_transform_applies_and_a_value_naming_blobs_the_room_does_not_hold_is_left_out(tmp_path):
    async with ana_on_a_server(tmp_path) as ana:
        image = quadrants()
        await ana.create_room("other", keep_open=True)
        await ana.join("other")
        theirs = png(160, 160, lambda u, v: GREEN)
        other = await textured_material(ana, "9" * 32, theirs)
        await ana.batch([other])  # the other room holds its image's chunks
        await ana.leave()
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        left, right = "a" * 32, "d" * 32
        # Left plane: its image mirrored in u (u' = 1 - u) by the summary's uv_transform.
        mirrored = await textured_material(ana, "c" * 32, image, (-1.0, 0.0, 1.0, 0.0, 1.0, 0.0))
        left_plane = textured_plane(left, "b" * 32, "c" * 32, x=-2.5, half=1.5)
        await ana.batch([*await sent_as_the_add_on_does(ana, left_plane), mirrored])
        # Right plane: a summary naming the other room's chunks, set without refs (a server stores any
        # bytes): the page cannot fetch them, leaves the value out and draws the material's own keys.
        right_plane = textured_plane(right, "e" * 32, "f" * 32, x=2.5, half=1.5)
        await ana.batch(
            [
                *await sent_as_the_add_on_does(ana, right_plane),
                ["set", "mat/" + "f" * 32 + "/set/diffuse_color", pack([1.0, 0.0, 0.0, 1.0])],
                ["set", "view/" + "f" * 32 + "/material", other[2]],
            ]
        )
        async with viewing(ana, "r", tmp_path) as page:
            await page.wait_for("blendsyncViewer.textures().length === 1", 30)
            await trio.sleep(0.3)
            shot = await page.screenshot()
            (tmp_path / "mirrored.png").write_bytes(await page.screenshot_png())
            assert around(shot, project(shot, (-3.25, 0.0, 0.75)), blue), page.log
            assert around(shot, project(shot, (-3.25, 0.0, -0.75)), green)
            assert around(shot, project(shot, (-1.75, 0.0, 0.0)), red)
            assert around(shot, project(shot, (2.5, 0.0, 0.0)), red, radius=20)
            assert await page.evaluate("blendsyncViewer.status") == "connected"


# ---- byte strings as trees of chunks (docs/values.md, "Chunked byte strings"), the add-on's format ----


async def set_encoded(client, key: str, encoded: dict, store) -> list:
    """A set of a document whose byte strings are already trees in ``store``: their chunks and list nodes
    put as the add-on puts them (children first, each node naming its children), the roots as refs."""
    value = pack(encoded)
    for blob, children in chunks.uploads(value, lambda _: False, store):
        await client.put_blob(store.get(blob), children=children)
    refs = chunks.refs_of(value)
    return ["set", key, value, refs] if refs else ["set", key, value]


async def set_with_trees(client, key: str, doc: dict) -> list:
    """A set of ``doc`` encoded by the add-on's own encoder: its byte strings past a chunk as trees."""
    store = chunks.ChunkCache()
    return await set_encoded(client, key, chunks.chunked(doc, store), store)


def hand_tree(
    pieces: list[bytes], chunk: int, fanout: int
) -> tuple[msgpack.ExtType, dict[bytes, list | None]]:
    """A tree over data chunks cut as the test wants, in shapes the add-on's encoder never makes: its
    extension, and its blobs to put in that order ({data: a node's distinct children, or None})."""
    blobs: dict[bytes, list | None] = {}
    level = []
    for piece in pieces:
        level.append(hashlib.sha256(piece).digest())
        blobs.setdefault(piece, None)
    while len(level) > 1:
        nodes = []
        for start in range(0, len(level), fanout):
            node = b"".join(level[start : start + fanout])
            nodes.append(hashlib.sha256(node).digest())
            blobs.setdefault(node, list(dict.fromkeys(level[start : start + fanout])))
        level = nodes
    head = sum(map(len, pieces)).to_bytes(8, "big") + chunk.to_bytes(4, "big") + fanout.to_bytes(2, "big")
    return msgpack.ExtType(chunks.CHUNK_TREE_EXT, head + level[0]), blobs


async def put_hand_tree(client, tree: tuple[msgpack.ExtType, dict]) -> bytes:
    """Puts a ``hand_tree``'s blobs; returns its root (the ref of a set that names it)."""
    ext, blobs = tree
    for data, children in blobs.items():
        await client.put_blob(data, children=children)
    return ext.data[-32:]


def display_doc(ops: list) -> dict:
    """The display mesh document of ``textured_plane``'s ops."""
    assert ops[-1][1].startswith("view/")
    return dict(ops[-1][2])


async def test_the_page_draws_a_plane_whose_mesh_and_image_travel_as_trees(tmp_path):
    async with ana_on_a_server(tmp_path) as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        plane, mat = "a" * 32, "c" * 32
        image = quadrants(600)
        material = await set_with_trees(ana, f"view/{mat}/material", material_summary(image, image, 600))
        ops = textured_plane(plane, "b" * 32, mat, cells=300)
        mesh = await set_with_trees(ana, ops[-1][1], display_doc(ops))
        # Trees of two node levels (a root over list nodes over the chunks) for the image and the mesh's
        # positions, normals (many equal chunks) and indices; one level for its UVs.
        assert [t.depth for t in chunks.trees_of(material[2])] == [2]
        assert sorted(t.depth for t in chunks.trees_of(mesh[2])) == [1, 2, 2, 2]
        await ana.batch([*ops[:-1], mesh, material])
        async with viewing(ana, "r", tmp_path) as page:
            sha = hashlib.sha256(image).hexdigest()
            await page.wait_for(f"blendsyncViewer.textures().includes('{sha}')", 60)
            await trio.sleep(0.3)  # a frame drawn with it
            assert await page.evaluate(f"blendsyncViewer.source('{plane}')") == "view:plane300", page.log
            shot = await page.screenshot()
            (tmp_path / "tree-textured.png").write_bytes(await page.screenshot_png())
            assert around(shot, project(shot, (-1.0, 0.0, 1.0)), red), page.log
            assert around(shot, project(shot, (-1.0, 0.0, -1.0)), red)
            assert around(shot, project(shot, (1.0, 0.0, 1.0)), blue)
            assert around(shot, project(shot, (1.0, 0.0, -1.0)), green)
            assert await page.evaluate("blendsyncViewer.waiting()") == 0


async def sized_set(client, key: str, doc: dict) -> tuple[list, dict[bytes, int]]:
    """``set_with_trees``, and the size of each distinct blob of the value (its chunks and tree nodes)."""
    store = chunks.ChunkCache()
    op = await set_encoded(client, key, chunks.chunked(doc, store), store)
    return op, {blob: len(store.get(blob)) for blob, _ in chunks.uploads(op[2], lambda _: False, store)}


async def test_the_page_fetches_the_chunks_of_what_it_draws_and_of_nothing_else(tmp_path):
    async with server_and_ana(tmp_path) as (b, ana):
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        plane, plane_mesh, box, box_mesh = "a" * 32, "b" * 32, "d" * 32, "e" * 32
        image = quadrants()
        # Drawn: a plane's display mesh and its material's image, and a cube without a display mesh by its
        # base mesh; each in chunks.
        plane_ops = textured_plane(plane, plane_mesh, "c" * 32, x=-2.0, half=1.5, cells=80)
        display, display_blobs = await sized_set(ana, plane_ops[-1][1], display_doc(plane_ops))
        material, material_blobs = await sized_set(
            ana, "view/" + "c" * 32 + "/material", material_summary(image, image)
        )
        box_ops = cube(box, box_mesh, "f" * 32, [2.5, 0.0, 0.0], [1.0, 0.0, 0.0])
        geometry, geometry_blobs = await sized_set(ana, f"mesh/{box_mesh}/geometry", cube_geometry(0.5, 4000))
        drawn = {**display_blobs, **material_blobs, **geometry_blobs}
        # Never drawn: a packed image of 3 MB, and the plane's own base mesh of 2 MB (it has a display mesh).
        packed_bytes = random.Random(14).randbytes(3 * 1024 * 1024)
        packed_doc = {"sha256": hashlib.sha256(packed_bytes).hexdigest(), "bytes": packed_bytes}
        packed, packed_blobs = await sized_set(ana, "img/" + "9" * 32 + "/data", packed_doc)
        plane_base, plane_base_blobs = await sized_set(
            ana, f"mesh/{plane_mesh}/geometry", cube_geometry(0.5, 175_000, first=100_000)
        )
        assert (
            sum(packed_blobs.values()) > 3 * 1024 * 1024 and sum(plane_base_blobs.values()) > 2 * 1024 * 1024
        )
        assert not set(drawn) & (set(packed_blobs) | set(plane_base_blobs))
        await ana.batch(
            [*plane_ops[:-1], display, material, *box_ops[:3], geometry, *box_ops[4:], packed, plane_base]
        )
        async with viewing(ana, "r", tmp_path) as page:
            sha = hashlib.sha256(image).hexdigest()
            await page.wait_for(f"blendsyncViewer.textures().includes('{sha}')", 60)
            await page.wait_for(f"blendsyncViewer.source('{box}') === 'base'", 60)
            await page.wait_for("blendsyncViewer.waiting() === 0", 60)
            await trio.sleep(0.3)  # a frame drawn with it
            assert await page.evaluate(f"blendsyncViewer.source('{plane}')") == "view:plane80", page.log
            shot = await page.screenshot()
            (tmp_path / "drawn-only.png").write_bytes(await page.screenshot_png())
            assert around(shot, project(shot, (-2.75, 0.0, 0.75)), red), page.log
            assert around(shot, project(shot, (-1.25, 0.0, 0.75)), blue)
            assert around(shot, project(shot, (-1.25, 0.0, -0.75)), green)
            assert around(shot, project(shot, (2.5, 0.0, 0.0)), red)
            # Each blob of what is drawn was asked for once, and nothing else was: the server sent exactly
            # their bytes (not the 5 MB of the others).
            assert await page.evaluate("blendsyncViewer.blobsAsked()") == len(drawn)
            assert b.metrics.blob_bytes_sent == sum(drawn.values())
            assert await page.evaluate("blendsyncViewer.deferred()") == 1  # the plane's base mesh
            # The plane's display mesh goes: its base mesh is drawn now, and fetched for that.
            await ana.delete(plane_ops[-1][1])
            await page.wait_for(f"blendsyncViewer.source('{plane}') === 'base'", 60)
            assert b.metrics.blob_bytes_sent == sum(drawn.values()) + sum(plane_base_blobs.values())
            assert await page.evaluate("blendsyncViewer.deferred()") == 0
            assert await page.evaluate("blendsyncViewer.connections()") == 1


def claiming(ext: msgpack.ExtType, more: int) -> msgpack.ExtType:
    """The same tree, its length claimed ``more`` bytes past what its chunks hold."""
    length = int.from_bytes(ext.data[:8], "big") + more
    return msgpack.ExtType(ext.code, length.to_bytes(8, "big") + ext.data[8:])


async def test_a_malformed_tree_leaves_its_value_out_and_the_page_goes_on(tmp_path):
    async with ana_on_a_server(tmp_path) as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        image = quadrants()
        # Left plane: well formed, textured.
        left = textured_plane("a" * 32, "b" * 32, "c" * 32, x=-2.5, half=1.5, cells=40)
        ops = [
            *left[:-1],
            await set_with_trees(ana, left[-1][1], display_doc(left)),
            await set_with_trees(ana, "view/" + "c" * 32 + "/material", material_summary(image, image)),
        ]
        # Right plane: its image's tree holds one chunk more than its length and chunk size make (the
        # last cut in two, the bytes adding up): the summary is left out, the material's own colour shows.
        right = textured_plane("d" * 32, "e" * 32, "f" * 32, x=2.5, half=1.5, cells=40)
        cut = [image[i : i + chunks.CHUNK_BYTES] for i in range(0, len(image), chunks.CHUNK_BYTES)]
        cut[-1:] = [cut[-1][:100], cut[-1][100:]]
        extra = hand_tree(cut, chunks.CHUNK_BYTES, chunks.FANOUT)
        ops += [
            *right[:-1],
            await set_with_trees(ana, right[-1][1], display_doc(right)),
            ["set", "mat/" + "f" * 32 + "/set/diffuse_color", pack([1.0, 0.0, 0.0, 1.0])],
            [
                "set",
                "view/" + "f" * 32 + "/material",
                pack(material_summary(extra[0], image)),
                [await put_hand_tree(ana, extra)],
            ],
        ]
        # Display meshes each left out, so that nothing is drawn for their objects:
        normal = f32([0.0, -1.0, 0.0])
        broken = {}
        # its trees (as the add-on made them) claiming one vertex more than their chunks hold;
        plane = textured_plane("1" * 32, "6" * 32, "c" * 32, cells=300)
        store = chunks.ChunkCache()
        encoded = chunks.chunked(display_doc(plane), store)
        whole = await set_encoded(ana, plane[-1][1], encoded, store)
        for field, more in (("positions", 12), ("normals", 12), ("uvs", 8)):
            encoded[field] = claiming(encoded[field], more)
        broken["1" * 32] = [*plane[:-1], [*whole[:2], pack(encoded), whole[3]]]
        # its normals a tree of fan-out 289 (past 256): a node naming one chunk 289 times;
        plane = textured_plane("2" * 32, "7" * 32, "c" * 32, cells=16)
        doc = display_doc(plane)
        tree = hand_tree([normal] * (len(doc["normals"]) // 12), 12, 289)
        root = await put_hand_tree(ana, tree)
        broken["2" * 32] = [*plane[:-1], ["set", plane[-1][1], pack({**doc, "normals": tree[0]}), [root]]]
        # its UVs a tree 9 levels deep (512 chunks of 4 bytes, fan-out 2), past 8;
        plane = textured_plane("3" * 32, "8" * 32, "c" * 32, cells=15)
        doc = display_doc(plane)
        tree = hand_tree([doc["uvs"][i : i + 4] for i in range(0, len(doc["uvs"]), 4)], 4, 2)
        root = await put_hand_tree(ana, tree)
        broken["3" * 32] = [*plane[:-1], ["set", plane[-1][1], pack({**doc, "uvs": tree[0]}), [root]]]
        # its normals 100,489 chunks of 12 bytes, all one (0, -1, 0): six blobs naming more chunks than
        # the page follows for one value (an array's worth of work and memory from a few bytes).
        plane = textured_plane("4" * 32, "9" * 32, "c" * 32, cells=316)
        doc = display_doc(plane)
        tree = hand_tree([normal] * (len(doc["normals"]) // 12), 12, 256)
        assert len(tree[1]) == 6
        root = await put_hand_tree(ana, tree)
        store = chunks.ChunkCache()
        encoded = chunks.chunked({**doc, "normals": b""}, store)
        bomb = await set_encoded(ana, plane[-1][1], encoded, store)
        encoded["normals"] = tree[0]
        broken["4" * 32] = [*plane[:-1], [*bomb[:2], pack(encoded), [*bomb[3], root]]]
        await ana.batch([*ops, *(op for plane in broken.values() for op in plane)])
        async with viewing(ana, "r", tmp_path) as page:
            await page.wait_for("blendsyncViewer.textures().length === 1", 60)
            await page.wait_for("blendsyncViewer.waiting() === 0", 60)  # every value joined or left out
            await trio.sleep(0.3)
            for obj in ("a" * 32, "d" * 32):
                assert await page.evaluate(f"blendsyncViewer.source('{obj}')") == "view:plane40", page.log
            for obj in broken:
                assert await page.evaluate(f"blendsyncViewer.source('{obj}')") is None, obj
            shot = await page.screenshot()
            (tmp_path / "malformed.png").write_bytes(await page.screenshot_png())
            assert around(shot, project(shot, (-3.25, 0.0, 0.75)), red), page.log
            assert around(shot, project(shot, (-1.75, 0.0, 0.75)), blue)
            assert around(shot, project(shot, (-1.75, 0.0, -0.75)), green)
            assert around(shot, project(shot, (2.5, 0.0, 0.0)), red, radius=20)
            # The page goes on: a well-formed value of one of those keys is drawn.
            await ana.batch([whole])
            await page.wait_for("blendsyncViewer.source('" + "1" * 32 + "') === 'view:plane300'", 60)
            assert await page.evaluate("blendsyncViewer.status") == "connected"
            assert await page.evaluate("blendsyncViewer.connections()") == 1


# The gate driven directly in the page (its real module, blobs handed in the order the test chooses).
GATE_SCENARIO = """
(async () => {
  const log = {};
  try {
    const { ChunkGate } = await import("/viewer/chunks.js");
    const { decodeValue } = await import("/viewer/values.js");
    const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    const { blobs, a, b } = SCENARIO;
    let asked = [];
    const gate = new ChunkGate((hashes) => asked.push(...hashes.map(hex)));
    const take = () => { const out = asked; asked = []; return out; };
    const unhex = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
    const give = (h, released = false) => gate.arrived(unhex(h), released ? null : bytes(blobs[h]));
    const text = (data) => String.fromCharCode(...data);
    log.a_held = gate.incoming("k", decodeValue(bytes(a))) === null;
    log.a_first = take();
    log.a_root_ready = give(log.a_first[0]).length;
    log.a_second = take();
    log.b_held = gate.incoming("k", decodeValue(bytes(b))) === null;  // a newer value while one waits
    log.b_first = take();
    log.a_rest_ready = 0;
    for (let level = log.a_second; level.length; level = take())
      for (const h of level) log.a_rest_ready += give(h).length;
    log.a_fetched_after_b = asked.length;
    gate.resend();  // a new connection: what is still needed, asked again
    log.resent = take();
    log.ready = [];
    for (let level = log.resent; level.length; level = take())
      for (const h of level) for (const [key, value] of give(h)) log.ready.push([key, text(value.data)]);
    log.waiting_after_b = gate.waiting.size;
    gate.incoming("j", decodeValue(bytes(a)));
    const root = take()[0];
    give(root);
    take();
    log.mid_tree_resent = (gate.resend(), take());
    give(log.mid_tree_resent[0], true);  // released: a later value replaced it
    log.waiting_after_release = gate.waiting.size;
    log.have_after_release = gate.have.size;
    // A newer value naming no chunks passes at once, and the tree value it replaced never follows it.
    const plain = new ChunkGate((hashes) => asked.push(...hashes.map(hex)));
    take();
    plain.incoming("p", decodeValue(bytes(a)));
    log.plain = plain.incoming("p", { data: "plain" }).data;
    log.plain_late = 0;
    for (let level = take(); level.length; level = take())
      for (const h of level) log.plain_late += plain.arrived(unhex(h), bytes(blobs[h])).length;
    log.plain_waiting = plain.waiting.size;
  } catch (error) {
    log.error = String(error);  // the test shows it
  }
  window.gateLog = JSON.stringify(log);
})();
"""


async def test_the_page_fetches_a_tree_level_by_level_and_a_newer_value_or_a_reconnect_or_a_release_wins(
    tmp_path,
):
    tokens, ana_token = await studio(tmp_path)
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana", token=ana_token) as ana:
            await ana.create_room("r", keep_open=True)
            share = await ana.admin("share", room="r")
        # Two values of one key, each a tree of 8 chunks of 4 bytes under nodes of 2: three node levels.
        first = hand_tree([b"A%03d" % i for i in range(8)], 4, 2)
        second = hand_tree([b"B%03d" % i for i in range(8)], 4, 2)
        blobs = {hashlib.sha256(d).hexdigest(): d for tree in (first, second) for d in tree[1]}
        scenario = {
            "blobs": {h: base64.b64encode(d).decode() for h, d in blobs.items()},
            "a": base64.b64encode(pack({"data": first[0]})).decode(),
            "b": base64.b64encode(pack({"data": second[0]})).decode(),
        }
        root_a, root_b = first[0].data[-32:].hex(), second[0].data[-32:].hex()
        async with open_browser(tmp_path / "profile") as page:
            await page.navigate(share["url"])
            await page.wait_for("window.blendsyncViewer && blendsyncViewer.status === 'connected'", 90)
            await page.evaluate(GATE_SCENARIO.replace("SCENARIO", json.dumps(scenario)))
            log = json.loads(await page.wait_for("window.gateLog", 30))
        assert "error" not in log, log
        assert log["a_held"] and log["a_first"] == [root_a]
        assert log["a_root_ready"] == 0
        assert log["a_second"] == [h.hex() for h in chunks.node_hashes(blobs[root_a])]  # the next level only
        assert log["b_held"] and log["b_first"] == [root_b]
        assert (
            log["a_rest_ready"] == 0 and log["a_fetched_after_b"] == 0
        )  # the replaced value went no further
        assert log["resent"] == [root_b]
        assert log["ready"] == [["k", "".join(f"B{i:03d}" for i in range(8))]]
        assert log["waiting_after_b"] == 0
        assert log["mid_tree_resent"] == [h.hex() for h in chunks.node_hashes(blobs[root_a])]
        assert log["waiting_after_release"] == 0 and log["have_after_release"] == 0
        assert log["plain"] == "plain" and log["plain_late"] == 0 and log["plain_waiting"] == 0


# The room's scene driven directly in the page (its real modules, blobs handed in when the test chooses).
SCENE_SCENARIO = """
(async () => {
  const log = {};
  try {
    const { RoomScene } = await import("/viewer/scene.js");
    const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    const unhex = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
    const { blobs, items, display } = SCENARIO;
    let asked = [];
    const scene = new RoomScene(null, (hashes) => asked.push(...hashes.map(hex)));
    const take = () => { const out = asked; asked = []; return out; };
    const give = (h) => scene.arrived(unhex(h), bytes(blobs[h]));
    // The snapshot: an object, its mesh's base geometry in chunks, and a packed image in chunks.
    scene.apply(items.map(([key, value]) => [key, bytes(value)]));
    scene.update();
    log.snapshot = take();
    log.deferred_in_snapshot = scene.gate.deferred.size;
    scene.goLive();  // no display mesh came: the object draws its base mesh, which is fetched
    log.live = take();
    // Its display mesh comes (in chunks too) while the base mesh's root is on its way: the base mesh is
    // not fetched further.
    scene.apply([[display[0], bytes(display[1])]]);
    scene.update();
    log.display = take();
    for (const h of log.live) give(h);
    scene.update();
    log.after_base_root = take();
    log.base_waiting = scene.gate.waiting.has(items[2][0]);
    // The display mesh is deleted before it came: the base mesh is fetched again.
    scene.apply([[display[0], null]]);
    scene.update();
    log.again = take();
    // It comes again (its root, asked already, is awaited), and its root is answered as released (a later
    // value replaced it): left out, so the base mesh is fetched again (its root too is awaited).
    scene.apply([[display[0], bytes(display[1])]]);
    scene.update();
    log.display_again = take();
    log.parked_again = !scene.gate.waiting.has(items[2][0]);
    scene.arrived(unhex(log.display[0]), null);
    scene.update();
    log.after_release = take();
    log.base_waiting_after_release = scene.gate.waiting.has(items[2][0]);
  } catch (error) {
    log.error = String(error.stack || error);  // the test shows it
  }
  window.sceneLog = JSON.stringify(log);
})();
"""


async def test_the_page_fetches_a_base_mesh_only_while_an_object_draws_it_and_never_an_image(tmp_path):
    obj, mesh = "a" * 32, "b" * 32
    geometry = hand_tree([b"G%03d" % i for i in range(8)], 4, 2)
    display = hand_tree([b"D%03d" % i for i in range(8)], 4, 2)
    image = hand_tree([b"I%03d" % i for i in range(8)], 4, 2)
    blobs = {hashlib.sha256(d).hexdigest(): d for tree in (geometry, display, image) for d in tree[1]}
    items = [
        [f"obj/{obj}/meta", pack({"type": "MESH", "data_kind": "mesh", "data": mesh})],
        [f"mesh/{mesh}/meta", pack({"materials": []})],
        [f"mesh/{mesh}/geometry", pack({**cube_geometry(), "vertices": geometry[0]})],
        ["img/" + "c" * 32 + "/data", pack({"sha256": "", "bytes": image[0]})],
    ]
    scenario = {
        "blobs": {h: base64.b64encode(d).decode() for h, d in blobs.items()},
        "items": [[key, base64.b64encode(value).decode()] for key, value in items],
        "display": [
            f"view/{obj}/mesh",
            base64.b64encode(pack({"format": 1, "positions": display[0]})).decode(),
        ],
    }
    root = {name: tree[0].data[-32:].hex() for name, tree in (("g", geometry), ("d", display))}
    async with ana_on_a_server(tmp_path) as ana, open_browser(tmp_path / "profile") as page:
        await ana.create_room("r", keep_open=True)
        share = await ana.admin("share", room="r")
        await page.navigate(share["url"])
        await page.wait_for("window.blendsyncViewer && blendsyncViewer.status === 'connected'", 90)
        await page.evaluate(SCENE_SCENARIO.replace("SCENARIO", json.dumps(scenario)))
        log = json.loads(await page.wait_for("window.sceneLog", 30))
    assert "error" not in log, log["error"]
    assert log["snapshot"] == [] and log["deferred_in_snapshot"] == 1  # the image is not even kept
    assert log["live"] == [root["g"]]
    assert log["display"] == [root["d"]]
    assert log["after_base_root"] == [] and not log["base_waiting"]
    assert log["again"] == [root["g"]]
    assert log["display_again"] == [] and log["parked_again"]
    assert log["after_release"] == [] and log["base_waiting_after_release"]


def base_plane(obj: str, mesh: str, mat: str, half: float = 2.0) -> list:
    """A square plane facing -Y as an add-on writes its mesh (no display mesh): one quad, the render UV
    map "UVMap" with (0, 0) at its bottom left, and "Decoy", mirrored, sorted before it and active."""
    uvs = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    geometry = {
        "vertices": f32([c for u, v in uvs for c in (-half + 2 * half * u, 0.0, -half + 2 * half * v)]),
        "edges": b"",
        "face_starts": i32([0]),
        "corner_verts": i32([0, 1, 2, 3]),
        "corner_edges": b"",
        "attributes": [
            {
                "name": "Decoy",
                "domain": "CORNER",
                "type": "FLOAT2",
                "data": f32([c for u, v in uvs for c in (1 - u, v)]),
            },
            {
                "name": "UVMap",
                "domain": "CORNER",
                "type": "FLOAT2",
                "data": f32([c for uv in uvs for c in uv]),
            },
        ],
        "active_uv": "Decoy",
        "render_uv": "UVMap",
    }
    return [
        ["set", f"mesh/{mesh}/meta", pack({"materials": [mat]})],
        ["set", f"mesh/{mesh}/geometry", pack(geometry)],
        ["set", f"obj/{obj}/meta", pack({"type": "MESH", "data_kind": "mesh", "data": mesh})],
        ["set", f"obj/{obj}/location", pack([0.0, 0.0, 0.0])],
    ]


async def test_an_object_without_a_display_mesh_maps_its_image_through_the_render_uv_map(tmp_path):
    async with ana_on_a_server(tmp_path) as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        plane, mat = "a" * 32, "c" * 32
        image = quadrants()
        await ana.batch([*base_plane(plane, "b" * 32, mat), await textured_material(ana, mat, image)])
        async with viewing(ana, "r", tmp_path) as page:
            await shows_quadrants(page, image, plane, "base", tmp_path / "base-textured.png")
