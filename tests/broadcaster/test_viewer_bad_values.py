"""What any member may write under the keys the viewer reads never breaks the page for its reviewers
(docs/values.md: "a value a viewer cannot read is left out, never fatal"): real server, headless Chromium."""

from __future__ import annotations

import pytest
from test_viewer_page import ana_on_a_server, pack, red_and_blue_cubes, viewing

from tools.browser import CHROMIUM, around, blue, project, red

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

# The page's own decoders, fed values that once stopped or froze it: each check must come back at once.
CHECKS = """
window.checks = null;
Promise.all([import("/viewer/values.js"), import("/viewer/textures.js")]).then(([v, t]) => {
  const bytes = (typed) => new Uint8Array(typed.buffer);
  const out = {};
  const chain = new Map();  // 30,000 objects, each the parent of the next, the deepest first: it overflowed
  const identity = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  for (let i = 29999; i >= 0; i--) {
    const parent = i ? { parent: `o${i - 1}`, parent_inverse: identity } : null;
    chain.set(`o${i}`, { location: [1, 0, 0], parent });
  }
  const world = v.worldMatrices(chain);
  out.chain = [world.size, Math.max(...[...world.values()].map((m) => m[12]))];
  const cube = (starts, corners) => ({
    vertices: bytes(new Float32Array(9)), face_starts: bytes(new Int32Array(starts)),
    corner_verts: bytes(new Int32Array(corners)), attributes: [],
  });
  const wide = [];  // faces that go back over every corner: 4e7 triangles from 160 kB
  for (let i = 0; i < 2000; i++) wide.push(0, 20000);
  const huge = [];  // starts at the ends of the int range: a loop of 2^32
  for (let i = 0; i < 50; i++) huge.push(-(2 ** 31), 2 ** 31 - 1);
  out.base = [
    v.baseMesh(cube(wide, new Array(20000).fill(0))), v.baseMesh(cube(huge, [0, 1, 2])),
    v.baseMesh(cube([0], [0, 1, 2])).indices.length,
  ];
  const display = (groups) => v.displayMesh({
    format: 1, positions: bytes(new Float32Array(9)), normals: bytes(new Float32Array(9)),
    indices: bytes(new Uint32Array([0, 1, 2])), groups,
  });
  out.groups = [
    display(new Array(5000).fill([0, 3, 0])), display([[0, 3, 0], [0, 4, 0], [-1, 3, 0], [0, 3, NaN]]).groups,
  ];
  const light = (name, value) => v.lightSummary(new Map([[`set/${name}`, value]]));
  out.light = [
    light("energy", Infinity).energy, light("energy", 1e300).energy, light("color", [NaN, 0, 0]).color,
    light("spot_size", -1).spot_size,
  ];
  const tricky = { toString: 0, valueOf: 0 };  // a map that cannot be turned into text
  out.material = v.materialSummary(new Map([["node/b", tricky], ["node/a", tricky], ["set/metallic", 0.5]]));
  const png = new Uint8Array(24);
  png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  png.set([0, 0, 0x40, 0, 0, 0, 0x40, 0], 16);  // 16384 x 16384
  const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 0, 8, 0, 16, 3, 0]);
  out.images = [t.imageSize(png), t.imageSize(jpeg), t.imageSize(new Uint8Array([1, 2, 3]))];
  window.checks = out;
});
"""


async def run_in_page(tmp_path, script: str, result: str):
    """``script`` run in a viewer page of an empty room; what it leaves in ``window[result]``."""
    async with ana_on_a_server(tmp_path) as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        async with viewing(ana, "r", tmp_path) as page:
            await page.evaluate(script)
            return await page.wait_for(f"window.{result}", 30)


async def test_the_pages_decoders_refuse_what_would_stop_or_freeze_it(tmp_path):
    checks = await run_in_page(tmp_path, CHECKS, "checks")
    assert checks["chain"] == [30000, 1025]  # cut after 1,024 parents, not thrown
    assert checks["base"] == [None, None, 3]  # faces whose starts go back or past the corners: left out
    assert checks["groups"][0] is None  # more draw calls than any mesh has: left out
    assert checks["groups"][1] == [[0, 3, 0]]  # groups past the indices or not whole numbers: dropped
    assert checks["light"] == [10, 1e6, [1, 1, 1], 0.001]
    assert checks["material"]["metallic"] == 0.5
    assert checks["images"] == [[16384, 16384], [16, 8], None]


async def test_bad_values_leave_their_object_out_and_the_rest_drawn_and_live(tmp_path):
    # Each of these once stopped the page's frames for good, lost the rest of its message, or blacked
    # out every object; the red and blue cubes must still be drawn in their colours and follow a move.
    tricky = {"toString": 0, "valueOf": 0}
    deep: list = [1.0]
    for _ in range(400):  # past the page's 64, within what msgpack packs
        deep = [deep]
    async with ana_on_a_server(tmp_path) as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        red_cube, blue_cube = await red_and_blue_cubes(ana)
        bad = [
            ["set", f"obj/{'1' * 32}/meta", pack({"type": "MESH", "data_kind": "mesh", "data": tricky})],
            ["set", f"obj/{'2' * 32}/location", pack(deep)],
            ["set", f"mat/{'f' * 32}/node/x", pack(tricky)],  # a node of the blue cube's material
            ["set", f"obj/{'3' * 32}/meta", pack({"type": "LIGHT", "data_kind": "light", "data": "4" * 32})],
            ["set", f"light/{'4' * 32}/set/energy", pack(float("inf"))],
            ["set", f"light/{'4' * 32}/set/color", pack([float("nan"), 0.0, 0.0])],
        ]
        await ana.batch(bad[:3])  # before the page opens: in its snapshot
        async with viewing(ana, "r", tmp_path) as page:
            await ana.batch(bad[3:])  # and live
            await ana.set(f"obj/{red_cube}/location", pack([0.0, 0.0, -1.5]))
            await page.wait_for(
                f"(p => p && Math.abs(p[2] + 1.5) < 1e-4)(blendsyncViewer.position('{red_cube}'))", 30
            )
            frames = await page.evaluate("blendsyncViewer.frames")
            await page.wait_for(f"blendsyncViewer.frames > {frames + 5}", 30)  # still drawing
            shot = await page.screenshot()
            (tmp_path / "after.png").write_bytes(await page.screenshot_png())
            assert around(shot, project(shot, (0.0, 0.0, -1.5)), red)
            assert around(shot, project(shot, (2.0, 0.0, 1.5)), blue)
            assert await page.evaluate(f"blendsyncViewer.source('{blue_cube}')") == "base", page.log


# The page's chunk gate, fed values whose byte strings together pass what it may hold: with the page's own
# bound (1 GiB, declared lengths only: nothing is fetched) and with a small one, to follow values that
# complete (their joined bytes count until the key is deleted or replaced).
HELD = """
window.held = null;
import("/viewer/chunks.js").then((c) => {
  const out = {}, left = [], asked = [];
  const gate = new c.ChunkGate((hashes) => asked.push(hashes.length), (key) => left.push(key));
  const MiB = 1024 * 1024;
  const tree = (mib, seed) => new c.ChunkTree(mib * MiB, MiB, 256, new Uint8Array(32).fill(seed));
  out.bound = c.MAX_HELD_BYTES;
  out.first = [gate.incoming("view/a/mesh", { positions: tree(400, 1) }), asked.length];
  out.second = [gate.incoming("view/b/mesh", { positions: tree(400, 2) }), asked.length];
  out.third = [gate.incoming("view/c/mesh", { positions: tree(400, 3) }), asked.length, [...left]];
  gate.incoming("view/a/mesh", null);  // deleted: its room is free again
  const c3 = gate.incoming("view/c/mesh", { positions: tree(400, 3) });
  out.again = [c3, asked.length, gate.waiting.has("view/c/mesh")];
  gate.incoming("mesh/d/geometry", { vertices: tree(400, 4) }, false);  // a base mesh, fetched when drawn
  out.wanted = [gate.want("mesh/d/geometry"), gate.deferred.has("mesh/d/geometry")];
  gate.incoming("view/b/mesh", null);
  const d = "mesh/d/geometry";
  out.room = [gate.want(d), gate.deferred.has(d), gate.waiting.has(d)];

  // A bound of 6 bytes: two values of 3 joined bytes are held; a third is left out until one goes.
  const small = new c.ChunkGate(() => {}, (key) => left.push(key), 6);
  const chunks = [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])];
  const hashes = chunks.map((_, i) => new Uint8Array(32).fill(100 + i));
  const root = new Uint8Array(32).fill(9);
  const complete = (key) => {
    small.incoming(key, { data: new c.ChunkTree(3, 1, 4, root) });
    let ready = small.arrived(root, new Uint8Array([...hashes[0], ...hashes[1], ...hashes[2]]));
    for (let i = 0; i < 3; i++) ready = ready.concat(small.arrived(hashes[i], chunks[i]));
    return ready.map(([k, v]) => [k, [...v.data]]);
  };
  out.small = [complete("view/x/mesh"), complete("view/y/mesh")];
  left.length = 0;
  out.small.push(complete("view/z/mesh"), [...left]);
  small.incoming("view/x/mesh", { plain: 1 });  // replaced by a value that names no chunk
  out.small.push(complete("view/z/mesh"));
  window.held = out;
});
"""


async def test_values_past_what_the_page_may_hold_wait_their_turn_or_are_left_out(tmp_path):
    held = await run_in_page(tmp_path, HELD, "held")
    assert held["bound"] == 1024**3
    assert held["first"] == [None, 1] and held["second"] == [None, 2]  # on their way (the roots asked for)
    assert held["third"] == [None, 2, ["view/c/mesh"]]  # past the bound: left out, nothing fetched
    assert held["again"] == [None, 3, True]  # once a held one went, it is fetched
    assert held["wanted"] == [None, True]  # no room: the base mesh stays deferred, not fetched nor lost
    assert held["room"] == [None, False, True]  # room again: fetched
    x, y, z = ([[f"view/{name}/mesh", [1, 2, 3]]] for name in "xyz")
    assert held["small"] == [x, y, [], ["view/z/mesh"], z]
