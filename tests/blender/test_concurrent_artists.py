"""Two edits of one datablock at the same moment, through real Blender processes and a real server.

Ana reaches the server through a small TCP proxy that can hold the bytes the
server sends her. For each pair of edits: the proxy holds Ana's incoming
bytes, Ana makes the first edit (her batch goes out), the test waits until
the server's answer is sitting in the proxy (so her batch is ordered first
and her ack has not arrived), then Ben makes the second edit from the state
that has not seen Ana's, and only then is Ana's traffic let through. Each
pair runs both ways round (Ana first with edit X, then Ana first with edit
Y). Cleo only watches. Every process must end with both edits, not only
agree.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)
from support import ServerProcess
from test_addon_multiprocess import Artist, converge

pytestmark = [pytest.mark.blender, pytest.mark.timeout(400)]


class HoldingProxy:
    """Forwards 127.0.0.1 connections to the server; what the server sends can be held and released."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._holding = False
        self._held: list[tuple[socket.socket, bytes]] = []
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(len(chunk) for _, chunk in self._held)

    def hold(self) -> None:
        with self._lock:
            self._holding = True

    def release(self) -> None:
        with self._lock:
            for sock, chunk in self._held:
                sock.sendall(chunk)
            self._held.clear()
            self._holding = False

    def close(self) -> None:
        for sock in [self._listener, *self._sockets]:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, holdable: bool) -> None:
        try:
            while chunk := source.recv(65536):
                with self._lock:
                    if holdable and self._holding:
                        self._held.append((sink, chunk))
                        continue
                    sink.sendall(chunk)
        except OSError:
            pass
        finally:
            sink.close()


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """Ana (through the proxy), Ben and Cleo in one room of a real server."""
    tmp = tmp_path_factory.mktemp("concurrent")
    process = ServerProcess(tmp / "data")
    host, port = process.start()
    proxy = HoldingProxy((host, port))
    people = [Artist(name, tmp) for name in ("ana", "ben", "cleo")]
    try:
        for artist in people:
            assert artist.recv(timeout=60).get("ready")
        ana, ben, cleo = people
        ana.call("connect", servers=f"127.0.0.1:{proxy.port}")
        for artist in (ben, cleo):
            artist.call("connect", servers=f"{host}:{port}")
        ana.call("create_room", room="same-moment", keep_open=True, send_scene=True)
        ana.call("pump_until_idle", quiet=0.1)  # her scene is in the room before the others join
        for artist in (ben, cleo):
            artist.call("join", room="same-moment")
        yield proxy, ana, ben, cleo
    finally:
        for artist in people:
            try:
                artist.close()
            except Exception:
                artist.proc.kill()
        proxy.close()
        process.kill()


def setup_script(n: int) -> str:
    """Pillar{n} (mesh, material Stone{n}) in Set{n}; Props{n} holding Lamp{n}; an empty Base{n}."""
    return f"""
scene = bpy.context.scene
for name in ("Set{n}", "Props{n}"):
    scene.collection.children.link(bpy.data.collections.new(name))
mat = bpy.data.materials.new("Stone{n}")
me = bpy.data.meshes.new("PillarMesh{n}")
me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
me.materials.append(mat)
bpy.data.collections["Set{n}"].objects.link(bpy.data.objects.new("Pillar{n}", me))
scene.collection.objects.link(bpy.data.objects.new("Base{n}", None))
bpy.data.collections["Props{n}"].objects.link(bpy.data.objects.new("Lamp{n}", None))
"""


# A geometry nodes modifier with a nested group (tests/blender/node_builders.py) for every artist to evaluate.
GEOMETRY_NODES = """
import sys
sys.path.insert(0, "tests/blender")
from node_builders import build_geometry_nodes
build_geometry_nodes("{n}")
"""


def bsdf(n: int) -> str:
    return f'bpy.data.materials["Stone{n}"].node_tree.nodes["Principled BSDF"]'


def add_math(n: int, value: float) -> str:
    return (
        f'node = bpy.data.materials["Stone{n}"].node_tree.nodes.new("ShaderNodeMath")\n'
        f"node.inputs[1].default_value = {value}\n"
    )


def add_socket(n: str, name: str, axis: str, value: float) -> str:
    """An input added to Deform{n}, linked to its Combine XYZ's ``axis``, set to ``value`` on the modifier."""
    return (
        f'group = bpy.data.node_groups["Deform{n}"]\n'
        f'socket = group.interface.new_socket("{name}", in_out="INPUT", socket_type="NodeSocketFloat")\n'
        'given = next(node for node in group.nodes if node.bl_idname == "NodeGroupInput")\n'
        f'group.links.new(given.outputs["{name}"], group.nodes["Combine XYZ"].inputs["{axis}"])\n'
        f'ob = bpy.data.objects["Deformed{n}"]\n'
        f'ob.modifiers["Deform"][socket.identifier] = {value}\n'
        "ob.update_tag()\n"
    )


def add_nested_input(n: str, name: str, value: float) -> str:
    """An input added to Lift{n}, set to ``value`` on its group node inside Deform{n}."""
    return (
        f'bpy.data.node_groups["Lift{n}"].interface.new_socket("{name}", in_out="INPUT", '
        'socket_type="NodeSocketFloat")\n'
        f'bpy.data.node_groups["Deform{n}"].nodes["Group"].inputs["{name}"].default_value = {value}\n'
    )


ZONE = 'bpy.data.node_groups["Zone{n}"]'
SWITCH = 'bpy.data.node_groups["Switch{n}"].nodes["Index Switch"]'


def add_repeat_item(n: str, value: float, math_input: int) -> str:
    """A float item added to Zone{n}'s repeat zone (Blender names it Float), given ``value`` and linked."""
    zone = ZONE.replace("{n}", n)
    return (
        f"{zone}.nodes['Repeat Output'].repeat_items.new('FLOAT', 'Float')\n"
        f"{zone}.nodes['Repeat Input'].inputs['Float'].default_value = {value}\n"
        f"{zone}.links.new({zone}.nodes['Repeat Input'].outputs['Float'],"
        f" {zone}.nodes['Math'].inputs[{math_input}])\n"
    )


# name -> (edit X, edit Y, expression read on every artist, its expected value); {n} is the scenario number
# Strokes in Texture Paint mode on the canvas's object, as an artist makes them (the sync loop reads an
# image being painted; outside Paint mode only the first stroke into a saved image is seen at once).
PAINT = (
    "import sys\nsys.path.insert(0, 'tests/blender')\nfrom paint_builders import stroke\n"
    "if bpy.context.mode != 'PAINT_TEXTURE':\n"
    "    bpy.context.view_layer.objects.active = bpy.data.objects['Canvas{n}']\n"
    "    bpy.ops.object.mode_set(mode='TEXTURE_PAINT')\n"
)


def draw_frame(n: str, frame: int, points: int) -> str:
    """A stroke of ``points`` points drawn on a new frame of Sketch{n}'s layer Lines (tagged as Blender's
    Draw tool tags it)."""
    return (
        f'drawing = bpy.data.grease_pencils["Sketch{n}"].layers["Lines"].frames.new({frame}).drawing\n'
        f"drawing.add_strokes([{points}])\n"
        "drawing.tag_positions_changed()\n"
    )


def stroke_on_frame_one(n: str, x: float) -> str:
    """A two-point stroke at ``x`` drawn on frame 1 of Sketch{n}'s layer Lines."""
    return (
        f'drawing = bpy.data.grease_pencils["Sketch{n}"].layers["Lines"].frames[0].drawing\n'
        'held = len(drawing.attributes["position"].data)\n'
        "drawing.add_strokes([2])\n"
        'for point in list(drawing.attributes["position"].data)[held:]:\n'
        f"    point.vector = ({x}, 1.0, 0.0)\n"
        "drawing.tag_positions_changed()\n"
    )


TRACKS = 'bpy.data.movieclips["Plate{n}"].tracking.tracks'
ROTO = 'bpy.data.masks["Roto{n}"].layers'
PAIRS = {
    "location-vs-scale": (
        'bpy.data.objects["Pillar{n}"].location.x = 7.0',
        'bpy.data.objects["Pillar{n}"].scale = (2.0, 2.0, 2.0)',
        'tuple(bpy.data.objects["Pillar{n}"].location) + tuple(bpy.data.objects["Pillar{n}"].scale)',
        [7.0, 0.0, 0.0, 2.0, 2.0, 2.0],
    ),
    "move-to-collection-vs-rename": (
        'ob = bpy.data.objects["Pillar{n}"]\n'
        'bpy.data.collections["Props{n}"].objects.link(ob)\n'
        'bpy.data.collections["Set{n}"].objects.unlink(ob)',
        'bpy.data.objects["Pillar{n}"].name = "Column{n}"',
        'sorted(c.name for c in bpy.data.objects["Column{n}"].users_collection)',
        ["Props{n}"],
    ),
    "base-colour-vs-roughness": (
        f"{bsdf('{n}')}.inputs['Base Color'].default_value = (1.0, 0.0, 0.0, 1.0)",
        f"{bsdf('{n}')}.inputs['Roughness'].default_value = 0.25",
        f"tuple({bsdf('{n}')}.inputs['Base Color'].default_value) + ({bsdf('{n}')}.inputs['Roughness']"
        ".default_value,)",
        [1.0, 0.0, 0.0, 1.0, 0.25],
    ),
    "rename-vs-reparent": (
        'bpy.data.objects["Pillar{n}"].name = "Column{n}"',
        'bpy.data.objects["Pillar{n}"].parent = bpy.data.objects["Base{n}"]',
        'bpy.data.objects["Column{n}"].parent.name',
        "Base{n}",
    ),
    "add-modifier-vs-move": (
        'bpy.data.objects["Pillar{n}"].modifiers.new("Smooth", "SUBSURF").levels = 3',
        'bpy.data.objects["Pillar{n}"].location.y = 4.0',
        '[(m.type, m.levels) for m in bpy.data.objects["Pillar{n}"].modifiers]'
        ' + [tuple(bpy.data.objects["Pillar{n}"].location)]',
        [["SUBSURF", 3], [0.0, 4.0, 0.0]],
    ),
    "object-colour-vs-in-front-and-pass-index": (
        'bpy.data.objects["Pillar{n}"].color = (1.0, 0.0, 0.0, 1.0)',
        'ob = bpy.data.objects["Pillar{n}"]\nob.show_in_front = True\nob.pass_index = 3',
        'list(bpy.data.objects["Pillar{n}"].color)'
        ' + [bpy.data.objects["Pillar{n}"].show_in_front, bpy.data.objects["Pillar{n}"].pass_index]',
        [1.0, 0.0, 0.0, 1.0, True, 3],
    ),
    "render-samples-vs-view-transform-and-look": (  # the scene is every case's: values differ by case
        "bpy.context.scene.eevee.taa_render_samples = 10 + {n}",
        "view = bpy.context.scene.view_settings\n"
        'view.view_transform = "Filmic"\n'
        'view.look = ("Low Contrast", "High Contrast")[{n} % 2]',  # a look of Filmic only
        "[bpy.context.scene.eevee.taa_render_samples == 10 + {n},"
        " bpy.context.scene.view_settings.view_transform,"
        ' bpy.context.scene.view_settings.look == ("Low Contrast", "High Contrast")[{n} % 2]]',
        [True, "Filmic", True],
    ),
    "link-vs-unlink-of-members": (
        'bpy.data.collections["Props{n}"].objects.link(bpy.data.objects["Pillar{n}"])',
        'bpy.data.collections["Props{n}"].objects.unlink(bpy.data.objects["Lamp{n}"])',
        'sorted(o.name for o in bpy.data.collections["Props{n}"].objects)',
        ["Pillar{n}"],
    ),
    "geometry-nodes-node-vs-modifier-input": (
        'bpy.data.node_groups["Deform{n}"].nodes["Combine XYZ"].inputs["X"].default_value = 2.0',
        'ob = bpy.data.objects["Deformed{n}"]\n'
        'height = bpy.data.node_groups["Deform{n}"].interface.items_tree["Height"]\n'
        "ob.modifiers['Deform'][height.identifier] = 3.0\n"
        "ob.update_tag()",
        '__import__("node_builders").evaluated_vertices("Deformed{n}")',
        [[2.0, 0.0, 3.0], [3.0, 0.0, 3.0], [2.0, 1.0, 3.0], [3.0, 1.0, 3.0]],
    ),
    "two-settings-of-one-node": (  # one key per node: the overridden artist merges its settings
        f"{bsdf('{n}')}.distribution = 'GGX'",
        f"{bsdf('{n}')}.subsurface_method = 'BURLEY'",
        f"[{bsdf('{n}')}.distribution, {bsdf('{n}')}.subsurface_method]",
        ["GGX", "BURLEY"],
    ),
    "reorder-modifiers-vs-add-one": (  # the stack order is one key: the overridden artist merges it
        'bpy.data.objects["Pillar{n}"].modifiers.move(1, 0)',
        'bpy.data.objects["Pillar{n}"].modifiers.new("Smooth", "SUBSURF")',
        '[m.name for m in bpy.data.objects["Pillar{n}"].modifiers]',
        ["Wave", "Bevel", "Smooth"],
    ),
    "add-first-modifiers-vs-add-one": (  # no key for an empty stack's order: both edits were made from []
        'ob = bpy.data.objects["Pillar{n}"]\nob.modifiers.new("Wave", "WAVE")\n'
        'ob.modifiers.new("Bevel", "BEVEL")',
        'bpy.data.objects["Pillar{n}"].modifiers.new("Smooth", "SUBSURF")',
        '[m.name for m in bpy.data.objects["Pillar{n}"].modifiers]',
        ["Bevel", "Smooth", "Wave"],  # sorted: and Wave stays before Bevel, as its artist stacked them
    ),
    "two-settings-of-one-light-probe": (  # its name and settings are one key (meta): merged per setting
        'bpy.data.lightprobes["Probe{n}"].influence_distance = 3.0',
        'bpy.data.lightprobes["Probe{n}"].falloff = 0.5',
        '[bpy.data.lightprobes["Probe{n}"].influence_distance, bpy.data.lightprobes["Probe{n}"].falloff]',
        [3.0, 0.5],
    ),
    "colour-space-vs-alpha-of-one-image": (  # an image's meta: per field, its file's fields as one
        'bpy.data.images["Tex{n}"].colorspace_settings.name = "Non-Color"\n'
        'addon.session.note_dirty([bpy.data.images["Tex{n}"]])  # as the audit finds it, now',
        'bpy.data.images["Tex{n}"].alpha_mode = "CHANNEL_PACKED"\n'
        'addon.session.note_dirty([bpy.data.images["Tex{n}"]])',
        '[bpy.data.images["Tex{n}"].colorspace_settings.name, bpy.data.images["Tex{n}"].alpha_mode]',
        ["Non-Color", "CHANNEL_PACKED"],
    ),
    "two-settings-of-one-constraint": (  # one key per constraint: the overridden artist merges its settings
        'bpy.data.objects["Pillar{n}"].constraints["Follow"].use_x = False',
        'bpy.data.objects["Pillar{n}"].constraints["Follow"].influence = 0.5',
        '[getattr(bpy.data.objects["Pillar{n}"].constraints["Follow"], a) for a in ("use_x", "influence")]',
        [False, 0.5],
    ),
    "rename-a-constraint-while-another-sets-it": (
        'bpy.data.objects["Pillar{n}"].constraints["Follow"].name = "Track"',
        'bpy.data.objects["Pillar{n}"].constraints["Follow"].influence = 0.5',
        '[[c.name, c.influence] for c in bpy.data.objects["Pillar{n}"].constraints]',
        [["Track", 0.5]],
    ),
    "rename-a-view-layer-while-another-sets-it": (
        'bpy.context.scene.view_layers["Pass{n}"].name = "Beauty{n}"',
        'bpy.context.scene.view_layers["Pass{n}"].samples = 32',
        '[[v.name, v.samples] for v in bpy.context.scene.view_layers if v.name in ("Pass{n}", "Beauty{n}")]',
        [["Beauty{n}", 32]],
    ),
    "rename-an-effect-while-another-sets-it": (
        'bpy.data.objects["Sketch{n}"].shader_effects["Blur"].name = "Soften"',
        'bpy.data.objects["Sketch{n}"].shader_effects["Blur"].samples = 12',
        '[[e.name, e.samples] for e in bpy.data.objects["Sketch{n}"].shader_effects]',
        [["Soften", 12]],
    ),
    "two-edit-one-text": (  # a text's content is one key: merged line by line
        'notes = bpy.data.texts["Notes{n}"]\n'
        'notes.from_string(notes.as_string().replace("shot 1", "shot 1: wide"))\n'
        "addon.session.note_dirty([notes])  # as the audit finds it, now",
        'notes = bpy.data.texts["Notes{n}"]\nnotes.from_string(notes.as_string() + "shot 4\\n")\n'
        "addon.session.note_dirty([notes])",
        'bpy.data.texts["Notes{n}"].as_string()',
        "shot 1: wide\nshot 2\nshot 3\nshot 4\n",
    ),
    "two-add-material-slots": (  # the material list is one key: slots added by both are merged
        'bpy.data.meshes["PillarMesh{n}"].materials.append(bpy.data.materials.new("Moss{n}"))',
        'bpy.data.meshes["PillarMesh{n}"].materials.append(bpy.data.materials.new("Rust{n}"))',
        '[m.name for m in bpy.data.meshes["PillarMesh{n}"].materials]',
        None,  # Stone first, then the slot ordered second, then the other: checked below
    ),
    "two-strokes-into-one-image": (  # an image's unsaved pixels are one key: the overridden artist merges
        PAINT + 'stroke("Canvas{n}", 0, 0, 4, (1.0, 0.0, 0.0, 1.0))',
        PAINT + 'stroke("Canvas{n}", 12, 12, 4, (0.0, 1.0, 0.0, 1.0))',
        '[list(bpy.data.images["Canvas{n}"].pixels[i : i + 4]) for i in (0, 4 * (16 * 13 + 13), 4 * 16 * 8)]',
        [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]],
    ),
    "two-first-strokes-into-a-saved-image": (  # merged against what the image shows saved
        PAINT + 'stroke("Canvas{n}", 0, 0, 4, (1.0, 0.0, 0.0, 1.0))',
        PAINT + 'stroke("Canvas{n}", 12, 12, 4, (0.0, 1.0, 0.0, 1.0))',
        '[list(bpy.data.images["Canvas{n}"].pixels[i : i + 4]) for i in (0, 4 * (16 * 13 + 13), 4 * 16 * 8)]',
        [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]],
    ),
    "two-add-sockets-to-one-group": (  # the interface is one key: the overridden artist merges it
        add_socket("{n}", "Shift", "X", 2.0),
        add_socket("{n}", "Slide", "Y", 3.0),
        '[sorted(i.name for i in bpy.data.node_groups["Deform{n}"].interface.items_tree),'
        ' __import__("node_builders").evaluated_vertices("Deformed{n}")]',
        [
            ["Geometry", "Geometry", "Height", "Shift", "Slide"],
            [[2.0, 3.0, 1.5], [3.0, 3.0, 1.5], [2.0, 4.0, 1.5], [3.0, 4.0, 1.5]],
        ],
    ),
    "two-add-sockets-to-a-nested-group": (  # the values name them by position on a group node elsewhere
        add_nested_input("{n}", "Spin", 2.0),
        add_nested_input("{n}", "Sway", 3.0),
        '[sorted(i.name for i in bpy.data.node_groups["Lift{n}"].interface.items_tree),'
        ' sorted((s.name, s.default_value) for s in bpy.data.node_groups["Deform{n}"].nodes["Group"].inputs'
        ' if s.bl_idname == "NodeSocketFloat")]',
        [["Geometry", "Geometry", "Offset", "Spin", "Sway"], [["Spin", 2.0], ["Sway", 3.0]]],
    ),
    "two-add-items-to-one-repeat-zone": (  # a node's item lists are one key: the overridden artist merges
        add_repeat_item("{n}", 2.0, 0),
        add_repeat_item("{n}", 3.0, 1),
        f"[[i.name for i in {ZONE}.nodes['Repeat Output'].repeat_items],"
        f" sorted((s.name, s.default_value) for s in {ZONE}.nodes['Repeat Input'].inputs"
        " if s.name.startswith('Float')),"
        " sorted((l.from_socket.name, l.to_socket.identifier)"
        f" for l in {ZONE}.links if l.to_node.name == 'Math')]",
        None,  # theirs' item keeps its name and place, ours follows as Float.001: checked below
    ),
    "remove-a-zone-item-while-one-is-added": (  # the item goes once the other's link is where he made it
        f"{ZONE}.nodes['Repeat Output'].repeat_items.remove("
        f"{ZONE}.nodes['Repeat Output'].repeat_items['Spare'])",
        add_repeat_item("{n}", 3.0, 1),
        f"[[i.name for i in {ZONE}.nodes['Repeat Output'].repeat_items],"
        f" [(s.name, s.default_value) for s in {ZONE}.nodes['Repeat Input'].inputs"
        " if s.name in ('Spare', 'Float')],"
        " sorted((l.from_socket.name, l.to_socket.identifier)"
        f" for l in {ZONE}.links if l.to_node.name == 'Math')]",
        [["Geometry", "Float"], [["Float", 3.0]], [["Float", "Value_001"]]],
    ),
    "rename-a-zone-item-while-one-is-added": (  # the renamed item keeps its name beside the new one
        f"{ZONE}.nodes['Repeat Output'].repeat_items['Spare'].name = 'Speed'",
        add_repeat_item("{n}", 3.0, 1),
        f"[[i.name for i in {ZONE}.nodes['Repeat Output'].repeat_items],"
        f" [(s.name, s.default_value) for s in {ZONE}.nodes['Repeat Input'].inputs"
        " if s.name in ('Spare', 'Speed', 'Float')],"
        " sorted((l.from_socket.name, l.to_socket.identifier)"
        f" for l in {ZONE}.links if l.to_node.name == 'Math')]",
        [["Geometry", "Speed", "Float"], [["Speed", 9.0], ["Float", 3.0]], [["Float", "Value_001"]]],
    ),
    "remove-a-zone-item-while-another-is-set": (  # the setter's value and link follow the item's move
        f"{ZONE}.nodes['Repeat Output'].repeat_items.remove("
        f"{ZONE}.nodes['Repeat Output'].repeat_items['Spare'])",
        f"{ZONE}.nodes['Repeat Input'].inputs['Keep'].default_value = 4.0\n"
        f"{ZONE}.links.new({ZONE}.nodes['Repeat Input'].outputs['Keep'], {ZONE}.nodes['Math'].inputs[1])\n",
        f"[[i.name for i in {ZONE}.nodes['Repeat Output'].repeat_items],"
        f" [(s.name, s.default_value) for s in {ZONE}.nodes['Repeat Input'].inputs"
        " if s.name in ('Spare', 'Keep')],"
        " sorted((l.from_socket.name, l.to_socket.identifier)"
        f" for l in {ZONE}.links if l.to_node.name == 'Math')]",
        [["Geometry", "Keep"], [["Keep", 4.0]], [["Keep", "Value_001"]]],
    ),
    "remove-a-nested-input-while-another-is-set": (  # the group node's value follows its socket's move
        'lift = bpy.data.node_groups["Lift{n}"]\n'
        'lift.interface.remove(next(i for i in lift.interface.items_tree if i.name == "Spare"))',
        'bpy.data.node_groups["Deform{n}"].nodes["Group"].inputs["Spin"].default_value = 2.0',
        '[[i.name for i in bpy.data.node_groups["Lift{n}"].interface.items_tree],'
        ' [(s.name, s.default_value) for s in bpy.data.node_groups["Deform{n}"].nodes["Group"].inputs'
        ' if s.bl_idname == "NodeSocketFloat"]]',
        [["Geometry", "Geometry", "Offset", "Spin"], [["Spin", 2.0]]],
    ),
    "remove-a-group-input-while-another-is-set": (  # the modifier's value follows its input's move
        'group = bpy.data.node_groups["Deform{n}"]\n'
        'group.interface.remove(next(i for i in group.interface.items_tree if i.name == "Spare"))',
        'ob = bpy.data.objects["Deformed{n}"]\n'
        'slide = next(i for i in bpy.data.node_groups["Deform{n}"].interface.items_tree if i.name == "Slide")'
        "\n"
        "ob.modifiers['Deform'][slide.identifier] = 3.0\n"
        "ob.update_tag()\n",
        '[[i.name for i in bpy.data.node_groups["Deform{n}"].interface.items_tree],'
        ' __import__("node_builders").evaluated_vertices("Deformed{n}")]',
        [
            ["Geometry", "Geometry", "Height", "Slide"],
            [[0.5, 3.0, 1.5], [1.5, 3.0, 1.5], [0.5, 4.0, 1.5], [1.5, 4.0, 1.5]],
        ],
    ),
    "rename-a-group-input-while-one-is-added": (  # the renamed input keeps its name beside the new one
        'group = bpy.data.node_groups["Deform{n}"]\n'
        'next(i for i in group.interface.items_tree if i.name == "Spare").name = "Push"',
        add_socket("{n}", "Slide", "Y", 3.0),
        '[[i.name for i in bpy.data.node_groups["Deform{n}"].interface.items_tree],'
        ' __import__("node_builders").evaluated_vertices("Deformed{n}")]',
        [
            ["Geometry", "Geometry", "Height", "Push", "Slide"],
            [[0.5, 3.0, 1.5], [1.5, 3.0, 1.5], [0.5, 4.0, 1.5], [1.5, 4.0, 1.5]],
        ],
    ),
    "remove-a-group-input-while-one-is-added": (  # the interface is one key: the input goes afterwards
        'group = bpy.data.node_groups["Deform{n}"]\n'
        'group.interface.remove(next(i for i in group.interface.items_tree if i.name == "Spare"))',
        add_socket("{n}", "Slide", "Y", 3.0),
        '[[i.name for i in bpy.data.node_groups["Deform{n}"].interface.items_tree],'
        ' __import__("node_builders").evaluated_vertices("Deformed{n}")]',
        [
            ["Geometry", "Geometry", "Height", "Slide"],
            [[0.5, 3.0, 1.5], [1.5, 3.0, 1.5], [0.5, 4.0, 1.5], [1.5, 4.0, 1.5]],
        ],
    ),
    "two-add-items-to-one-index-switch": (  # items without names: theirs' new one, then ours'
        f"{SWITCH}.index_switch_items.new()\n{SWITCH}.inputs[3].default_value = 2.0",
        f"{SWITCH}.index_switch_items.new()\n{SWITCH}.inputs[3].default_value = 3.0",
        f"[len({SWITCH}.index_switch_items), sorted(s.default_value for s in {SWITCH}.inputs[3:5])]",
        [4, [2.0, 3.0]],
    ),
    "two-track-one-clip": (  # a clip's tracking data is one key: the overridden artist merges it
        f'{TRACKS}["Corner"].markers.find_frame(1).co = (0.2, 0.3)\n{TRACKS}.new(name="Left", frame=1)',
        f'{TRACKS}["Corner"].markers.find_frame(2).co = (0.7, 0.8)\n{TRACKS}.new(name="Right", frame=2)',
        f"[sorted(t.name for t in {TRACKS}),"
        f' [[m.frame, round(m.co[0], 3), round(m.co[1], 3)] for m in {TRACKS}["Corner"].markers]]',
        [["Corner", "Left", "Right"], [[1, 0.2, 0.3], [2, 0.7, 0.8]]],
    ),
    "rename-a-track-while-another-moves-it": (  # the moved marker follows the track's new name
        f'{TRACKS}["Corner"].name = "Eye"',
        f'{TRACKS}["Corner"].markers.find_frame(2).co = (0.7, 0.8)',
        f"[sorted(t.name for t in {TRACKS}),"
        f" [[m.frame, round(m.co[0], 3), round(m.co[1], 3)] for m in {TRACKS}[0].markers]]",
        [["Eye"], [[1, 0.0, 0.0], [2, 0.7, 0.8]]],
    ),
    "two-draw-on-one-grease-pencil": (  # every layer's frames are one key: the overridden artist merges
        draw_frame("{n}", 5, 4),
        draw_frame("{n}", 9, 2),
        'sorted((f.frame_number, len(f.drawing.strokes)) for f in bpy.data.grease_pencils["Sketch{n}"]'
        '.layers["Lines"].frames)',
        [[1, 1], [5, 1], [9, 1]],
    ),
    "erase-and-draw-in-one-frame": (  # one erases the held stroke and draws, one draws: stroke by stroke
        'bpy.data.grease_pencils["Sketch{n}"].layers["Lines"].frames[0].drawing.remove_strokes(indices=[0])\n'
        + stroke_on_frame_one("{n}", 2.0),
        stroke_on_frame_one("{n}", 5.0),
        'sorted(round(p.vector[0], 3) for p in bpy.data.grease_pencils["Sketch{n}"].layers["Lines"]'
        '.frames[0].drawing.attributes["position"].data)',
        [2.0, 2.0, 5.0, 5.0],
    ),
    "rename-a-modifier-while-another-sets-it": (
        'bpy.data.objects["Pillar{n}"].modifiers["Bevel"].name = "Soft"',
        'bpy.data.objects["Pillar{n}"].modifiers["Bevel"].width = 0.25',
        '[[m.name, m.width] for m in bpy.data.objects["Pillar{n}"].modifiers]',
        [["Soft", 0.25]],
    ),
    "colour-and-draw-in-one-frame": (  # one's first vertex colours, one's plain stroke: stroke by stroke
        'drawing = bpy.data.grease_pencils["Sketch{n}"].layers["Lines"].frames[0].drawing\n'
        'drawing.attributes.new("vertex_color", "FLOAT_COLOR", "POINT")\n'
        + stroke_on_frame_one("{n}", 2.0)
        + 'for colour in list(drawing.attributes["vertex_color"].data)[-2:]:\n'
        "    colour.color = (1.0, 0.0, 0.0, 1.0)\n",
        stroke_on_frame_one("{n}", 5.0),
        '[sorted(round(p.vector[0], 3) for p in bpy.data.grease_pencils["Sketch{n}"].layers["Lines"]'
        '.frames[0].drawing.attributes["position"].data),'
        ' sorted(round(c.color[0], 3) for c in bpy.data.grease_pencils["Sketch{n}"].layers["Lines"]'
        '.frames[0].drawing.attributes["vertex_color"].data)]',
        [[0.0, 0.0, 0.0, 2.0, 2.0, 5.0, 5.0], [0.0] * 5 + [1.0] * 2],
    ),
    "add-a-layer-and-draw-while-one-draws": (  # the new layer (meta) stood: its drawing merged in
        'gp = bpy.data.grease_pencils["Sketch{n}"]\n'
        'gp.layers.new("Notes").frames.new(1).drawing.add_strokes([2])\n'
        "gp.layers['Notes'].frames[0].drawing.tag_positions_changed()\n",
        stroke_on_frame_one("{n}", 5.0),
        "sorted([layer.name, len(layer.frames[0].drawing.strokes)]"
        ' for layer in bpy.data.grease_pencils["Sketch{n}"].layers)',
        [["Lines", 2], ["Notes", 1]],
    ),
    "two-roto-points-of-one-mask": (  # a mask's layers are one key: merged per layer, spline and point
        f'{ROTO}["Hair"].splines[0].points[1].co = (0.25, 0.75)',
        f'{ROTO}["Hair"].splines[0].points[2].co = (0.625, 0.375)\n'
        f'{ROTO}["Matte"].splines[0].points[2].co = (0.5, 0.125)',
        f'[list(p.co) for p in {ROTO}["Hair"].splines[0].points][1:]'
        f' + [list({ROTO}["Matte"].splines[0].points[2].co)]',
        [[0.25, 0.75], [0.625, 0.375], [0.5, 0.125]],
    ),
    "two-camera-backgrounds": (  # a camera's backgrounds are one key: the overridden artist merges them
        'bpy.data.cameras["Shot{n}"].background_images[0].alpha = 0.25',
        'bpy.data.cameras["Shot{n}"].background_images[1].scale = 3.0',
        '[[b.alpha, b.scale] for b in bpy.data.cameras["Shot{n}"].background_images]',
        [[0.25, 1.0], [0.5, 3.0]],
    ),
    "two-add-nodes-to-one-tree": (
        add_math("{n}", 0.25),
        add_math("{n}", 0.75),
        'sorted((n.name, n.inputs[1].default_value) for n in bpy.data.materials["Stone{n}"].node_tree.nodes'
        ' if n.bl_idname == "ShaderNodeMath")',
        None,  # both nodes, whichever takes the name "Math": checked below
    ),
}


GREASE_PENCIL_SETUP = (
    'gp = bpy.data.grease_pencils.new("Sketch{n}")\n'
    'gp.layers.new("Lines").frames.new(1).drawing.add_strokes([3])\n'
    'bpy.context.scene.collection.objects.link(bpy.data.objects.new("Sketch{n}", gp))\n'
)
ZONE_SETUP = (
    'zone = bpy.data.node_groups.new("Zone{n}", "GeometryNodeTree")\n'
    'zone_in = zone.nodes.new("GeometryNodeRepeatInput")\n'
    'zone_in.pair_with_output(zone.nodes.new("GeometryNodeRepeatOutput"))\n'
    'zone.nodes.new("ShaderNodeMath")\n'
    'bpy.data.objects["Pillar{n}"].modifiers.new("Zone", "NODES").node_group = zone  # evaluated: reported\n'
)
CLIP_SETUP = (
    "import sys\nsys.path.insert(0, 'tests/blender')\n"
    "from scene_builders import image_sequence\n"
    "clip = bpy.data.movieclips.load(image_sequence(), check_existing=False)\n"
    'clip.name = "Plate{n}"\n'
    'clip.tracking.tracks.new(name="Corner", frame=1).markers.insert_frame(2, co=(0.5, 0.5))\n'
)
# Set up before the edits of these pairs, after setup_script
PAIR_SETUP = {
    "colour-space-vs-alpha-of-one-image": 'bpy.data.images.new("Tex{n}", 4, 4).use_fake_user = True\n',
    "two-settings-of-one-light-probe": 'probe = bpy.data.lightprobes.new("Probe{n}", "SPHERE")\n'
    'bpy.context.scene.collection.objects.link(bpy.data.objects.new("Probe{n}", probe))\n',
    "two-add-items-to-one-repeat-zone": ZONE_SETUP,
    "two-add-items-to-one-index-switch": 'tree = bpy.data.node_groups.new("Switch{n}", "GeometryNodeTree")\n'
    'tree.nodes.new("GeometryNodeIndexSwitch").data_type = "FLOAT"\n'
    'bpy.data.objects["Pillar{n}"].modifiers.new("Switch", "NODES").node_group = tree\n',
    "remove-a-zone-item-while-one-is-added": ZONE_SETUP
    + "zone.nodes['Repeat Output'].repeat_items.new('FLOAT', 'Spare')\n"
    + "zone_in.inputs['Spare'].default_value = 9.0\n",
    "rename-a-zone-item-while-one-is-added": ZONE_SETUP
    + "zone.nodes['Repeat Output'].repeat_items.new('FLOAT', 'Spare')\n"
    + "zone_in.inputs['Spare'].default_value = 9.0\n",
    "remove-a-zone-item-while-another-is-set": ZONE_SETUP
    + "for name, value in (('Spare', 9.0), ('Keep', 1.0)):\n"
    + "    zone.nodes['Repeat Output'].repeat_items.new('FLOAT', name)\n"
    + "    zone_in.inputs[name].default_value = value\n",
    "remove-a-nested-input-while-another-is-set": 'for name in ("Spare", "Spin"):\n'
    '    bpy.data.node_groups["Lift{n}"].interface.new_socket(name, in_out="INPUT",'
    ' socket_type="NodeSocketFloat")\n'
    'bpy.data.node_groups["Deform{n}"].nodes["Group"].inputs["Spare"].default_value = 9.0\n',
    "remove-a-group-input-while-another-is-set": 'bpy.data.node_groups["Deform{n}"].interface.new_socket('
    '"Spare", in_out="INPUT", socket_type="NodeSocketFloat")\n' + add_socket("{n}", "Slide", "Y", 1.0),
    "rename-a-group-input-while-one-is-added": 'bpy.data.node_groups["Deform{n}"].interface.new_socket('
    '"Spare", in_out="INPUT", socket_type="NodeSocketFloat")\n',
    "remove-a-group-input-while-one-is-added": 'bpy.data.node_groups["Deform{n}"].interface.new_socket('
    '"Spare", in_out="INPUT", socket_type="NodeSocketFloat")\n',
    "two-track-one-clip": CLIP_SETUP,
    "rename-a-track-while-another-moves-it": CLIP_SETUP,
    "two-roto-points-of-one-mask": 'mask = bpy.data.masks.new(name="Roto{n}")\n'
    'for name in ("Hair", "Matte"):\n'
    "    points = mask.layers.new(name=name).splines.new().points\n"
    "    points.add(2)\n"
    "    for i, point in enumerate(points):\n"
    "        point.co = (0.1 * i, 0.2)\n",
    "two-camera-backgrounds": 'cam = bpy.data.cameras.new("Shot{n}")\n'
    "cam.background_images.new()\n"
    "cam.background_images.new()\n"
    'bpy.context.scene.collection.objects.link(bpy.data.objects.new("Shot{n}", cam))\n',
    "two-draw-on-one-grease-pencil": GREASE_PENCIL_SETUP,
    "erase-and-draw-in-one-frame": GREASE_PENCIL_SETUP,
    "add-a-layer-and-draw-while-one-draws": GREASE_PENCIL_SETUP,
    "colour-and-draw-in-one-frame": GREASE_PENCIL_SETUP,
    "two-edit-one-text": 'bpy.data.texts.new("Notes{n}").from_string("shot 1\\nshot 2\\nshot 3\\n")\n',
    "rename-a-view-layer-while-another-sets-it": 'bpy.context.scene.view_layers.new("Pass{n}")\n',
    "rename-an-effect-while-another-sets-it": GREASE_PENCIL_SETUP
    + 'bpy.data.objects["Sketch{n}"].shader_effects.new("Blur", "FX_BLUR")\n',
    "rename-a-modifier-while-another-sets-it": 'bpy.data.objects["Pillar{n}"].modifiers.new("Bevel", "BEVEL")'
    "\n",
    "two-first-strokes-into-a-saved-image": "import sys\nsys.path.insert(0, 'tests/blender')\n"
    "from paint_builders import canvas\n"
    'canvas("Canvas{n}", size=16)\n',
    "two-strokes-into-one-image": "import sys\nsys.path.insert(0, 'tests/blender')\n"
    "from paint_builders import canvas, stroke\n"
    'canvas("Canvas{n}", size=16)\n'
    'stroke("Canvas{n}", 0, 0, 16, (0.0, 0.0, 1.0, 1.0))  # unsaved pixels both paint over\n',
    "two-settings-of-one-constraint": 'con = bpy.data.objects["Pillar{n}"].constraints.new("COPY_LOCATION")\n'
    'con.name = "Follow"\n'
    'con.target = bpy.data.objects["Base{n}"]\n',
    "rename-a-constraint-while-another-sets-it": 'con = bpy.data.objects["Pillar{n}"].constraints.new('
    '"COPY_LOCATION")\n'
    'con.name = "Follow"\n'
    'con.target = bpy.data.objects["Base{n}"]\n',
    "reorder-modifiers-vs-add-one": 'ob = bpy.data.objects["Pillar{n}"]\n'
    'ob.modifiers.new("Bevel", "BEVEL")\n'
    'ob.modifiers.new("Wave", "WAVE")\n',
}


def _fill(value, n: int):
    if isinstance(value, str):
        return value.replace("{n}", str(n))
    if isinstance(value, list):
        return [_fill(v, n) for v in value]
    return value


CASES = [(name, swapped) for name in PAIRS for swapped in (False, True)]


@pytest.mark.parametrize(("pair", "swapped"), CASES, ids=[f"{p}-{'yx' if s else 'xy'}" for p, s in CASES])
def test_both_edits_survive(room, pair, swapped):
    proxy, ana, ben, cleo = room
    n = CASES.index((pair, swapped))
    edit_x, edit_y, expression, expected = (_fill(v, n) for v in PAIRS[pair])
    first, second = (edit_y, edit_x) if swapped else (edit_x, edit_y)
    setup = setup_script(n) + GEOMETRY_NODES.replace("{n}", str(n)) + _fill(PAIR_SETUP.get(pair, ""), n)
    ana.call("edit", script=setup)
    converge([ana, ben, cleo])

    proxy.hold()
    try:
        # Scanned and sent in this pump, or in a later one for an image being painted (read at most
        # twice a second): each artist pumps until the edit's batch is out.
        ana.call("edit", script=first)
        assert ana.call("pump_until", expr="session.unacked", timeout=5)["met"]
        deadline = time.monotonic() + 20
        while proxy.held_bytes == 0:  # the server's answer to Ana (her ack) is on the wire, held
            assert time.monotonic() < deadline, "the server never answered Ana's batch"
            time.sleep(0.01)
        assert ana.call("state")["unacked"] == 1
        sent = ben.call("state")["stats"]["batches"]
        ben.call("edit", script=second)  # from a state without Ana's edit
        assert ben.call("pump_until", expr=f"session.stats['batches'] > {sent}", timeout=5)["met"]
        ben.call("pump_until_idle", quiet=0.2)
        assert ben.call("state")["unacked"] == 0
    finally:
        proxy.release()
    converge([ana, ben, cleo])

    for artist in (ana, ben, cleo):
        artist.call("eval", expr='__import__("sys").path.insert(0, "tests/blender")')
        value = artist.call("eval", expr=expression)["value"]
        if pair == "two-add-nodes-to-one-tree":
            assert sorted(v for _, v in value) == [0.25, 0.75], (artist.name, value)
            assert sorted(name for name, _ in value) == ["Math", "Math.001"], (artist.name, value)
        elif pair == "two-add-items-to-one-repeat-zone":  # Ben's edit is ordered second: his item is theirs
            theirs, ours = (
                ((2.0, "Value"), (3.0, "Value_001")) if swapped else ((3.0, "Value_001"), (2.0, "Value"))
            )
            assert value == [
                ["Geometry", "Float", "Float.001"],
                [["Float", theirs[0]], ["Float.001", ours[0]]],
                sorted([["Float", theirs[1]], ["Float.001", ours[1]]]),
            ], (artist.name, value)
        elif pair == "add-first-modifiers-vs-add-one":
            assert sorted(value) == expected and value.index("Wave") < value.index("Bevel"), (
                artist.name,
                value,
            )
        elif pair == "two-add-material-slots":
            later, earlier = (f"Moss{n}", f"Rust{n}") if swapped else (f"Rust{n}", f"Moss{n}")
            assert value == [f"Stone{n}", later, earlier], (artist.name, value)
        else:
            assert value == expected, (artist.name, value)
        assert artist.call("state")["errors"] == []
    if pair.startswith("two-") and "strokes" in pair:  # back to Object mode for the next pairs
        for artist in (ana, ben):
            artist.call(
                "edit",
                script="if bpy.context.mode != 'OBJECT':\n    bpy.ops.object.mode_set(mode='OBJECT')\n",
            )


NOTICES = "[n.text for n in session.notices.items]"
NOTICES_MODULE = "type(session.notices).__module__"


def test_same_property_the_overridden_artist_is_told(room):
    """Both set one property at the same moment: server order decides (Ben's, ordered second, stays
    everywhere) and only Ana, whose committed value was replaced by one made without seeing it, gets a
    notice. Then turn-taking on the same property: nobody is told."""
    proxy, ana, ben, cleo = room
    n = len(CASES)
    ana.call("edit", script=setup_script(n))
    converge([ana, ben, cleo])
    before = {artist.name: artist.call("eval", expr=NOTICES)["value"] for artist in (ana, ben, cleo)}

    proxy.hold()
    try:
        ana.call("edit", script=f'bpy.data.objects["Pillar{n}"].location.x = 7.0')
        deadline = time.monotonic() + 20
        while proxy.held_bytes == 0:  # Ana's ack is held: Ben cannot have seen her edit
            assert time.monotonic() < deadline, "the server never answered Ana's batch"
            time.sleep(0.01)
        ben.call("edit", script=f'bpy.data.objects["Pillar{n}"].location.x = 9.0')
        ben.call("pump_until_idle", quiet=0.2)
    finally:
        proxy.release()
    converge([ana, ben, cleo])
    for artist in (ana, ben, cleo):
        assert artist.call("eval", expr=f'bpy.data.objects["Pillar{n}"].location.x')["value"] == 9.0
    after = {artist.name: artist.call("eval", expr=NOTICES)["value"] for artist in (ana, ben, cleo)}
    # The pairs above told Ana of overrides too: the history keeps the newest few (notices.MAX_NOTICES).
    kept = ana.call("eval", expr=f"__import__({NOTICES_MODULE}, fromlist=['_']).MAX_NOTICES")["value"]
    assert after["ana"] == [*before["ana"], f"ben set Pillar{n} location after you"][-kept:]
    assert after["ben"] == before["ben"] and after["cleo"] == before["cleo"]

    # Turn-taking: each edit is made after seeing the one before it.
    for artist, x in ((ana, 1.0), (ben, 2.0), (ana, 3.0)):
        artist.call("edit", script=f'bpy.data.objects["Pillar{n}"].location.x = {x}')
        converge([ana, ben, cleo])
    assert {artist.name: artist.call("eval", expr=NOTICES)["value"] for artist in (ana, ben, cleo)} == after


KEYS = (
    "[[round(c, 3) for c in k.co] for k in (lambda a: a.action.layers[0].strips[0].channelbag(a.action_slot)"
    ".fcurves.find('location', index=2))(bpy.data.objects['Keyed{n}'].animation_data).keyframe_points]"
)


def test_two_artists_keying_one_channel_at_the_same_moment_keep_both_keys(room):
    """Both key the same f-curve (an object's Z location, keyed at frame 5) at the same moment, Ana at
    frame 1 and Ben at frame 10: server order alone would keep one f-curve whole. Ana, overridden, merges:
    every artist ends with the three keys, and Ana is not told of an override (nothing of hers was lost)."""
    proxy, ana, ben, cleo = room
    n = len(CASES) + 1
    ana.call(
        "edit",
        script=f'ob = bpy.data.objects.new("Keyed{n}", None)\n'
        "bpy.context.scene.collection.objects.link(ob)\n"
        "ob.location.z = 3.0\n"
        'ob.keyframe_insert("location", index=2, frame=5)\n',
    )
    converge([ana, ben, cleo])
    before = ana.call("eval", expr=NOTICES)["value"]
    key = (
        'ob = bpy.data.objects["Keyed{n}"]\nob.location.z = {z}\n'
        'ob.keyframe_insert("location", index=2, frame={f})'
    )
    proxy.hold()
    try:
        ana.call("edit", script=key.format(n=n, z=1.0, f=1))
        deadline = time.monotonic() + 20
        while proxy.held_bytes == 0:  # Ana's ack is held: Ben cannot have seen her key
            assert time.monotonic() < deadline, "the server never answered Ana's batch"
            time.sleep(0.01)
        ben.call("edit", script=key.format(n=n, z=9.0, f=10))
        ben.call("pump_until_idle", quiet=0.2)
    finally:
        proxy.release()
    converge([ana, ben, cleo])
    for artist in (ana, ben, cleo):
        keys = artist.call("eval", expr=KEYS.replace("{n}", str(n)))["value"]
        assert keys == [[1.0, 1.0], [5.0, 3.0], [10.0, 9.0]], (artist.name, keys)
        assert artist.call("state")["errors"] == []
    assert ana.call("eval", expr=NOTICES)["value"] == before
