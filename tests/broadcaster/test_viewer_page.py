"""The browser viewer in real headless Chromium (WebGL on SwiftShader) against a real server: what it draws,
checked by the screenshot's pixels, and what it says when its link is refused.

The room is a recorded one, written through the client library with the add-on's value encodings
(docs/addon.md, docs/values.md); tests/blender/test_viewer_blender.py fills one from real Blender.
"""

from __future__ import annotations

import array
import hashlib
import math
import struct
import zlib
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


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def f32(values) -> bytes:
    return array.array("f", values).tobytes()


def i32(values) -> bytes:
    return array.array("i", values).tobytes()


CUBE_VERTICES = [c for z in (-1, 1) for y in (-1, 1) for x in (-1, 1) for c in (x, y, z)]
CUBE_FACES = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]


def cube(obj: str, mesh: str, mat: str, location: list[float], colour: list[float], size=0.5) -> list:
    """The keys an add-on writes for a cube with one material (docs/addon.md, "Keys")."""
    return [
        ["set", f"mat/{mat}/meta", pack({})],
        ["set", f"mat/{mat}/set/diffuse_color", pack([*colour, 1.0])],
        ["set", f"mesh/{mesh}/meta", pack({"materials": [mat]})],
        [
            "set",
            f"mesh/{mesh}/geometry",
            pack(
                {
                    "vertices": f32([v * size for v in CUBE_VERTICES]),
                    "edges": b"",
                    "face_starts": i32([0, 4, 8, 12, 16, 20]),
                    "corner_verts": i32([i for face in CUBE_FACES for i in face]),
                    "corner_edges": b"",
                    "attributes": [],
                }
            ),
        ],
        ["set", f"obj/{obj}/meta", pack({"type": "MESH", "data_kind": "mesh", "data": mesh})],
        ["set", f"obj/{obj}/location", pack(location)],
        ["set", f"obj/{obj}/scale", pack([1.0, 1.0, 1.0])],
    ]


async def studio(tmp_path: Path):
    tokens = tmp_path / "tokens.toml"
    return tokens, add_user(tokens, "ana", "user")


async def test_the_page_draws_the_room_where_it_is_in_its_colours_and_follows_a_move(tmp_path):
    tokens, ana_token = await studio(tmp_path)
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana", token=ana_token) as ana:
            await ana.create_room("shot/010 #1", keep_open=True)
            await ana.join("shot/010 #1")
            red_cube, blue_cube = "a" * 32, "d" * 32
            await ana.batch(cube(red_cube, "b" * 32, "c" * 32, [-2.0, 0.0, 0.0], [1.0, 0.0, 0.0]))
            await ana.batch(cube(blue_cube, "e" * 32, "f" * 32, [2.0, 0.0, 1.5], [0.0, 0.0, 1.0]))
            share = await ana.admin("share", room="shot/010 #1")
            async with open_browser(tmp_path / "profile") as page:
                await page.navigate(f"{share['url']}#camera={CAMERA}")
                await page.wait_for("window.blendsyncViewer && blendsyncViewer.firstFrameMs", 90)
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
    tokens, ana_token = await studio(tmp_path)
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana", token=ana_token) as ana:
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
    tokens, ana_token = await studio(tmp_path)
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana", token=ana_token) as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            red_cube, blue_cube = "a" * 32, "d" * 32
            await ana.batch(cube(red_cube, "b" * 32, "c" * 32, [-2.0, 0.0, 0.0], [1.0, 0.0, 0.0]))
            await ana.batch(cube(blue_cube, "e" * 32, "f" * 32, [2.0, 0.0, 1.5], [0.0, 0.0, 1.0]))
            # Ana looks down at the red cube from the front and has the blue one selected; she is green.
            await ana.presence(
                name="ana",
                color=[0.0, 1.0, 0.0],
                frame=42,
                view_matrix=view_matrix([-2.0, -3.0, 1.5], [-2.0, 0.0, 0.0]),
                selection=[blue_cube],
            )
            share = await ana.admin("share", room="r")
            async with open_browser(tmp_path / "profile") as page:
                await page.navigate(f"{share['url']}#camera={CAMERA}")
                await page.wait_for("window.blendsyncViewer && blendsyncViewer.firstFrameMs", 90)
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
    tokens, ana_token = await studio(tmp_path)
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "d",
        http_port=0,
        tokens_file=tokens,
        heartbeat_interval=0.3,
        heartbeat_timeout=1.5,
    )
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana", token=ana_token) as ana:
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


async def textured_material(
    client, mat: str, image: bytes, uv_transform=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
) -> list:
    data, hashes = await chunked(client, image)
    summary = {
        "base_color": [0.8, 0.8, 0.8],
        "metallic": 0.0,
        "roughness": 0.5,
        "emission": [0.0, 0.0, 0.0],
        "base_color_image": {
            "hash": hashlib.sha256(image).hexdigest(),
            "width": 160,
            "height": 160,
            "data": data,
            "linear": False,
            "extension": "REPEAT",
            "interpolation": "Closest",
            "uv_transform": list(uv_transform),
        },
    }
    return ["set", f"view/{mat}/material", pack(summary), hashes]


RED, BLUE, GREEN = (230, 0, 0), (0, 0, 230), (0, 200, 0)


async def test_the_page_maps_a_materials_image_and_follows_a_new_one(tmp_path):
    tokens, ana_token = await studio(tmp_path)
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana", token=ana_token) as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            plane, mat = "a" * 32, "c" * 32
            # Left half red; right half blue above, green below: a flip either way shows.
            first = png(160, 160, lambda u, v: RED if u < 0.5 else BLUE if v >= 0.5 else GREEN)
            assert len(first) > CHUNK_BYTES  # it travels in chunks the page fetches as blobs
            # A fine grid: its display mesh's arrays travel in chunks too.
            mesh = await sent_as_the_add_on_does(ana, textured_plane(plane, "b" * 32, mat, cells=80))
            assert len(mesh[-1]) == 4
            await ana.batch([*mesh, await textured_material(ana, mat, first)])
            share = await ana.admin("share", room="r")
            async with open_browser(tmp_path / "profile") as page:
                await page.navigate(f"{share['url']}#camera={CAMERA}")
                await page.wait_for("window.blendsyncViewer && blendsyncViewer.firstFrameMs", 90)
                sha = hashlib.sha256(first).hexdigest()
                await page.wait_for(f"blendsyncViewer.textures().includes('{sha}')", 30)
                await trio.sleep(0.3)  # a frame drawn with it
                assert await page.evaluate(f"blendsyncViewer.source('{plane}')") == "view:plane80"
                shot = await page.screenshot()
                (tmp_path / "textured.png").write_bytes(await page.screenshot_png())
                assert around(shot, project(shot, (-1.0, 0.0, 1.0)), red), page.log
                assert around(shot, project(shot, (-1.0, 0.0, -1.0)), red)
                assert around(shot, project(shot, (1.0, 0.0, 1.0)), blue)
                assert around(shot, project(shot, (1.0, 0.0, -1.0)), green)
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
    tokens, ana_token = await studio(tmp_path)
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana", token=ana_token) as ana:
            image = png(160, 160, lambda u, v: RED if u < 0.5 else BLUE if v >= 0.5 else GREEN)
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
            share = await ana.admin("share", room="r")
            async with open_browser(tmp_path / "profile") as page:
                await page.navigate(f"{share['url']}#camera={CAMERA}")
                await page.wait_for("window.blendsyncViewer && blendsyncViewer.firstFrameMs", 90)
                await page.wait_for("blendsyncViewer.textures().length === 1", 30)
                await trio.sleep(0.3)
                shot = await page.screenshot()
                (tmp_path / "mirrored.png").write_bytes(await page.screenshot_png())
                assert around(shot, project(shot, (-3.25, 0.0, 0.75)), blue), page.log
                assert around(shot, project(shot, (-3.25, 0.0, -0.75)), green)
                assert around(shot, project(shot, (-1.75, 0.0, 0.0)), red)
                assert around(shot, project(shot, (2.5, 0.0, 0.0)), red, radius=20)
                assert await page.evaluate("blendsyncViewer.status") == "connected"
