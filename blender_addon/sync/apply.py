"""Applying remote set/delete operations to the scene.

Operations are ``(key, value)`` pairs; ``value`` None deletes the key.
The :class:`Applier` sorts what it is fed so that datablocks are created
before the datablocks that link to them, applies in slices, and remembers
links whose target has not arrived yet: the operation holding the link is
applied again when the target is created.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable

import bpy
from mathutils import Matrix

from . import ids, rna
from .codec import PARTS, PRIMARY_PART, decode_value, op_order, parse_key, unpack_f32, unpack_i32
from .serialise import (
    ATTRIBUTE_LAYOUT,
    BONE_PROPS,
    LATTICE_SIZE,
    METABALL_ELEMENT,
    POSE_BONE_PROPS,
    SHAPE_KEY_PROPS,
    SPLINE_FLAGS,
    bone_roll,
    clip_content,
    clip_digest,
    curve_type,
    font_content,
    image_content,
    library_content,
    linked_entry,
    ser_interface,
    sound_content,
    stroke_sizes,
)
from .tracker import ADOPT_PROP, ChangeTracker

Op = tuple[str, bytes | None]
SLOTS_PREFIX = "slots:"  # pending-link token: an object waits for its data's material slots
LATTICE_PREFIX = "lattice:"  # pending-link token: lattice points wait for the lattice's size
SHAPES_PREFIX = "shapes:"  # pending-link token: shape keys wait for their mesh's vertices
POSE_PREFIX = "pose:"  # pending-link token: an object's pose waits for its armature's bones
GPENCIL_PREFIX = "gpencil:"  # pending-link token: grease pencil strokes wait for their layers


# ---------------------------------------------------------------- batch context


class _Context:
    """Lookups for one applied operation; collects uuids that could not be resolved."""

    def __init__(self, applier: Applier) -> None:
        self.applier = applier
        self.missing: set[str] = set()
        self.created: list[str] = []  # uuids of stub datablocks made while applying

    def resolve(self, uuid: str | None) -> bpy.types.ID | None:
        if not uuid:
            return None
        found = self.applier._index.get(uuid)
        if found is None:
            self.missing.add(uuid)
            return None
        return found[1]

    def resolve_collection(self, uuid: str) -> bpy.types.Collection | None:
        target = self.resolve(uuid)
        if target is None:
            return None
        return target.collection if isinstance(target, bpy.types.Scene) else target

    def stub(self, kind: str, uuid: str, object_type: str) -> bpy.types.ID:
        """Create empty data for an object whose data has not arrived; the data's keys fill it in."""
        name = f"pending-{uuid[:8]}"
        if kind == "mesh":
            data = bpy.data.meshes.new(name)
        elif kind == "curve":
            curve_kind = object_type if object_type in ("SURFACE", "FONT") else "CURVE"
            data = _new_curve(name, curve_kind)
        elif kind == "light":
            data = bpy.data.lights.new(name, type="POINT")
        elif kind == "mball":
            data = bpy.data.metaballs.new(name)
        elif kind == "lattice":
            data = bpy.data.lattices.new(name)
        elif kind == "lprobe":
            data = bpy.data.lightprobes.new(name, "SPHERE")  # replaced if its meta names another type
        elif kind == "speaker":
            data = bpy.data.speakers.new(name)
        elif kind == "arm":
            data = bpy.data.armatures.new(name)
        elif kind == "gpencil":
            data = bpy.data.grease_pencils.new(name)
        else:
            data = bpy.data.cameras.new(name)
        self.applier._register(kind, uuid, data)
        self.created.append(uuid)
        return data


# ---------------------------------------------------------------- helpers


def _set(struct, attr: str, value) -> None:
    """Assign only when different (avoids needless depsgraph tags)."""
    try:
        current = getattr(struct, attr)
        if hasattr(current, "__len__") and not isinstance(current, str):
            if [float(x) for x in current] == [float(x) for x in value]:
                return
        elif current == value:
            return
        setattr(struct, attr, value)
    except (AttributeError, TypeError, ValueError, RuntimeError):
        pass


def _rename(id_data: bpy.types.ID, name: str) -> None:
    if id_data.name != name:
        id_data.name = name


def _fset(coll, attr: str, data: bytes) -> None:
    values = unpack_f32(data)
    if len(values):
        coll.foreach_set(attr, values)


def _iset(coll, attr: str, data: bytes) -> None:
    values = unpack_i32(data)
    if len(values):
        coll.foreach_set(attr, values)


def _set_materials(materials, wanted: list[bpy.types.Material | None]) -> None:
    """Set a data material list in place (clearing it would reset the objects' slot links)."""
    while len(materials) > len(wanted):
        materials.pop()
    for i, mat in enumerate(wanted):
        if i >= len(materials):
            materials.append(mat)
        elif materials[i] != mat:
            materials[i] = mat


# ---------------------------------------------------------------- creators

Creator = Callable[[str, dict, _Context], bpy.types.ID]


def _create_scene(uuid: str, doc: dict, ctx: _Context) -> bpy.types.ID:
    for scene in bpy.data.scenes:
        if ids.peek_uuid(scene) is None or ADOPT_PROP in scene:
            if ADOPT_PROP in scene:
                del scene[ADOPT_PROP]
            old = ids.peek_uuid(scene)
            if old is not None:
                ctx.applier._index.pop(old, None)
            return scene
    return bpy.data.scenes.new(doc["name"])


def _create_obj(uuid: str, doc: dict, ctx: _Context) -> bpy.types.ID:
    data = None
    if doc.get("data_kind") and doc.get("data"):
        data = ctx.applier._index.get(doc["data"], (None, None))[1]
        if data is None:
            data = ctx.stub(doc["data_kind"], doc["data"], doc["type"])
    return bpy.data.objects.new(doc["name"], data)


def _create_img(uuid: str, doc: dict, ctx: _Context) -> bpy.types.ID:
    gen = doc["generated"]
    if gen is None:  # the encoded file arrives in the data part
        return bpy.data.images.new(doc["name"], 1, 1, alpha=True)
    return bpy.data.images.new(
        doc["name"], gen["width"], gen["height"], alpha=True, float_buffer=gen["float"]
    )


def _load_sound(doc: dict) -> bpy.types.Sound:
    """A packed sound made from the encoded file in ``doc`` (Blender loads sounds only from files)."""
    fd, path = tempfile.mkstemp(prefix="blendsync-", suffix=doc["ext"])
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(doc["bytes"])
        sound = bpy.data.sounds.load(path, check_existing=False)
        sound.pack()
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
    sound.name = doc["name"]
    return sound


FONT_POINTERS = ("font", "font_bold", "font_italic", "font_bold_italic")


def _new_curve(name: str, curve_kind: str) -> bpy.types.Curve:
    """A new curve; a new text curve drops the built-in font Blender gives it (its meta names its fonts)."""
    before = {f.as_pointer() for f in bpy.data.fonts}
    curve = bpy.data.curves.new(name, type=curve_kind)
    fresh = [f for f in bpy.data.fonts if f.as_pointer() not in before and ids.peek_uuid(f) is None]
    if fresh:
        for attr in FONT_POINTERS:
            setattr(curve, attr, None)
        for font in fresh:
            if font.users == 0:
                bpy.data.fonts.remove(font)
    return curve


def _load_font(doc: dict) -> bpy.types.VectorFont:
    """The built-in font, or a packed font made from the font file in ``doc``."""
    if doc["builtin"]:
        # A built-in font that a new text curve brought along (and that has no uuid yet) is taken over.
        font = next(
            (f for f in bpy.data.fonts if f.filepath == ids.BUILTIN_FONT and ids.peek_uuid(f) is None), None
        )
        if font is None:
            font = bpy.data.fonts.load(ids.BUILTIN_FONT, check_existing=False)
    else:
        fd, path = tempfile.mkstemp(prefix="blendsync-", suffix=doc["ext"])
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(doc["bytes"])
            font = bpy.data.fonts.load(path, check_existing=False)
            font.pack()
        finally:
            with contextlib.suppress(OSError):
                os.remove(path)
    _rename_font(font, doc["name"])
    return font


def _rename_font(font: bpy.types.VectorFont, name: str) -> None:
    if font.name != name:
        with contextlib.suppress(AttributeError):  # the built-in font's name cannot be changed
            font.name = name


def clip_folder(digest: str) -> str:
    """Where the files of a received movie clip are kept (Blender cannot pack movie clips)."""
    return os.path.join(tempfile.gettempdir(), "blendsync-clips", digest)


def _load_clip(doc: dict) -> bpy.types.MovieClip:
    folder = clip_folder(doc["sha256"])
    os.makedirs(folder, exist_ok=True)
    for name, data in doc["files"]:
        path = os.path.join(folder, os.path.basename(name))
        if not os.path.isfile(path) or os.path.getsize(path) != len(data):
            fd, tmp = tempfile.mkstemp(dir=folder)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
    clip = bpy.data.movieclips.load(os.path.join(folder, os.path.basename(doc["file"])), check_existing=False)
    clip.name = doc["name"]
    return clip


def _write_library(doc: dict) -> str:
    """Write a received library's .blend where it is kept (linked data is read from it on every load)."""
    folder = os.path.join(tempfile.gettempdir(), "blendsync-libs", doc["sha256"])
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, os.path.basename(doc["file"]))
    if not os.path.isfile(path) or os.path.getsize(path) != len(doc["bytes"]):
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(doc["bytes"])
        os.replace(tmp, path)
    return path


def _link_from(filepath: str, entries: Iterable[list[str]]) -> None:
    """Link datablocks (``[collection attr, name]``) from a .blend file."""
    wanted: dict[str, list[str]] = {}
    for attr, name in entries:
        wanted.setdefault(attr, []).append(name)
    if not wanted:
        return
    with bpy.data.libraries.load(filepath, link=True) as (source, target):
        for attr, names in wanted.items():
            available = set(getattr(source, attr, ()))
            setattr(target, attr, [n for n in names if n in available])


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(bpy.path.abspath(a))) == os.path.normcase(os.path.abspath(b))


def _create_lib(uuid: str, doc: dict, ctx: _Context) -> bpy.types.ID:
    path = _write_library(doc)
    _link_from(path, doc["linked"])
    lib = next((lib for lib in bpy.data.libraries if _same_file(lib.filepath, path)), None)
    if lib is None:
        raise RuntimeError("nothing could be linked from the library")
    return lib


CREATORS: dict[str, Creator] = {
    "text": lambda u, d, c: bpy.data.texts.new(d["name"]),
    "img": _create_img,
    "sound": lambda u, d, c: _load_sound(d),
    "font": lambda u, d, c: _load_font(d),
    "clip": lambda u, d, c: _load_clip(d),
    "tex": lambda u, d, c: bpy.data.textures.new(d["name"], type=d["type"]),
    "action": lambda u, d, c: bpy.data.actions.new(d["name"]),
    "ngroup": lambda u, d, c: bpy.data.node_groups.new(d["name"], "ShaderNodeTree"),
    "mat": lambda u, d, c: bpy.data.materials.new(d["name"]),
    "world": lambda u, d, c: bpy.data.worlds.new(d["name"]),
    "mesh": lambda u, d, c: bpy.data.meshes.new(d["name"]),
    "curve": lambda u, d, c: _new_curve(d["name"], d["curve_type"]),
    "mball": lambda u, d, c: bpy.data.metaballs.new(d["name"]),
    "lattice": lambda u, d, c: bpy.data.lattices.new(d["name"]),
    "gpencil": lambda u, d, c: bpy.data.grease_pencils.new(d["name"]),
    "lprobe": lambda u, d, c: bpy.data.lightprobes.new(d["name"], d["type"]),
    "speaker": lambda u, d, c: bpy.data.speakers.new(d["name"]),
    "light": lambda u, d, c: bpy.data.lights.new(d["name"], type=d["type"]),
    "cam": lambda u, d, c: bpy.data.cameras.new(d["name"]),
    "arm": lambda u, d, c: bpy.data.armatures.new(d["name"]),
    "coll": lambda u, d, c: bpy.data.collections.new(d["name"]),
    "obj": _create_obj,
    "scene": _create_scene,
    "lib": _create_lib,
}


# ---------------------------------------------------------------- objects


def _apply_obj_meta(ob: bpy.types.Object, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(ob, doc["name"])
    if doc.get("data_kind") and doc.get("data"):
        data = ctx.applier._index.get(doc["data"], (None, None))[1]
        if data is None:
            data = ctx.stub(doc["data_kind"], doc["data"], doc["type"])
        if ob.data != data:
            ob.data = data
    parent = ctx.resolve(doc["parent"])
    if ob.parent != parent and parent is not ob:
        ob.parent = parent
    _set(ob, "parent_type", doc["parent_type"])
    for attr in (
        "hide_viewport",
        "hide_render",
        "hide_select",
        "empty_display_type",
        "empty_display_size",
        "display_type",
    ):
        _set(ob, attr, doc[attr])
    wanted = {}
    for ref in doc["collections"]:
        coll = ctx.resolve_collection(ref)
        if coll is not None:
            wanted[coll.as_pointer()] = coll
    synced = {scene.collection.as_pointer() for scene in bpy.data.scenes if ids.peek_uuid(scene)}
    for coll in list(ob.users_collection):
        ptr = coll.as_pointer()
        if ptr not in wanted and (ptr in synced or ids.peek_uuid(coll) is not None):
            coll.objects.unlink(ob)
    present = {c.as_pointer() for c in ob.users_collection}
    for ptr, coll in wanted.items():
        if ptr not in present:
            coll.objects.link(ob)
    view_layer = bpy.context.view_layer
    try:
        if bool(ob.hide_get(view_layer=view_layer)) != doc["hide"]:
            ob.hide_set(doc["hide"], view_layer=view_layer)
    except RuntimeError:
        pass
    if len(ob.material_slots) < len(doc["material_slots"]) and doc.get("data"):
        # The data's material list has not arrived yet: apply again once it has.
        ctx.missing.add(SLOTS_PREFIX + doc["data"])
    for slot, (link, mat_uuid) in zip(ob.material_slots, doc["material_slots"], strict=False):
        _set(slot, "link", link)
        if link == "OBJECT":
            mat = ctx.resolve(mat_uuid)
            if slot.material != mat:
                slot.material = mat
    return ob


def _apply_obj_transform(ob: bpy.types.Object, doc: dict, ctx: _Context) -> bpy.types.ID:
    _set(ob, "rotation_mode", doc["rotation_mode"])
    for attr in (
        "location",
        "rotation_euler",
        "rotation_quaternion",
        "rotation_axis_angle",
        "scale",
        "delta_location",
        "delta_rotation_euler",
        "delta_scale",
    ):
        _set(ob, attr, doc[attr])
    flat = doc["parent_inverse"]
    matrix = Matrix([flat[0:4], flat[4:8], flat[8:12], flat[12:16]])
    if ob.matrix_parent_inverse != matrix:
        ob.matrix_parent_inverse = matrix
    return ob


def _apply_obj_modifiers(ob: bpy.types.Object, doc: list, ctx: _Context) -> bpy.types.ID:
    if [(m.name, m.type) for m in ob.modifiers] != [(d["name"], d["type"]) for d in doc]:
        ob.modifiers.clear()
        for d in doc:
            try:
                ob.modifiers.new(d["name"], d["type"])
            except (TypeError, RuntimeError):
                continue
    by_name = {m.name: m for m in ob.modifiers}
    for d in doc:
        mod = by_name.get(d["name"])
        if mod is None:
            continue
        _set(mod, "show_viewport", d["show_viewport"])
        _set(mod, "show_render", d["show_render"])
        rna.write_props(mod, d["props"], ctx.resolve)
    return ob


def _apply_obj_anim(ob: bpy.types.Object, doc: dict, ctx: _Context) -> bpy.types.ID:
    action = ctx.resolve(doc["action"])
    if action is None:
        if ob.animation_data is not None and ob.animation_data.action is not None:
            ob.animation_data.action = None
        return ob
    ad = ob.animation_data or ob.animation_data_create()
    if ad.action != action:
        ad.action = action
    slot = next((s for s in action.slots if s.identifier == doc["slot"]), None)
    if slot is not None and ad.action_slot != slot:
        ad.action_slot = slot
    return ob


@contextlib.contextmanager
def _animation_detached(scene: bpy.types.Scene):
    """Detach the actions of a scene's objects for a while.

    Evaluating a scene (which operators do too) writes animated values back to
    the objects, at whatever frame the scene is on while it is being applied:
    that must not overwrite their transforms.
    """
    held = []
    for ob in scene.objects:
        ad = ob.animation_data
        if ad is not None and ad.action is not None:
            held.append((ad, ad.action, ad.action_slot))
            ad.action = None
    try:
        yield
    finally:
        for ad, action, slot in held:
            ad.action = action
            if slot is not None and ad.action_slot != slot:
                ad.action_slot = slot


def _evaluate_without_animation(scene: bpy.types.Scene) -> None:
    with _animation_detached(scene):
        for view_layer in scene.view_layers[:1]:
            with bpy.context.temp_override(scene=scene, view_layer=view_layer):
                bpy.context.evaluated_depsgraph_get()


def _apply_obj_pose(ob: bpy.types.Object, doc: dict, ctx: _Context) -> bpy.types.ID:
    if ob.type != "ARMATURE":
        return ob
    wanted = doc["bones"]

    def incomplete() -> bool:
        return ob.pose is None or any(d["name"] not in ob.pose.bones for d in wanted)

    if wanted and incomplete():
        # The pose is rebuilt from the armature's bones when the object is evaluated in a scene
        # (which need not be the window's scene).
        ob.update_tag()
        for scene in ob.users_scene:
            _evaluate_without_animation(scene)
    if incomplete():
        # The object is not in the view layer yet, or its armature's bones have not arrived:
        # tried again at the end of each step (Applier._retry_poses).
        ctx.missing.add(POSE_PREFIX + ids.get_uuid(ob))
        return ob
    for d in wanted:
        pb = ob.pose.bones[d["name"]]
        for attr in POSE_BONE_PROPS:
            _set(pb, attr, d[attr])
    return ob


# ---------------------------------------------------------------- armatures


@contextlib.contextmanager
def _armature_edit_mode(arm: bpy.types.Armature):
    """Edit mode on a throw-away object using ``arm`` (edit bones exist only in edit mode)."""
    ob = bpy.data.objects.new("blendsync-temp", arm)
    scene = bpy.context.scene
    scene.collection.objects.link(ob)
    view_layer = bpy.context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = ob
    window = bpy.context.window or bpy.context.window_manager.windows[0]
    try:
        with (
            _animation_detached(scene),
            bpy.context.temp_override(
                window=window, scene=scene, view_layer=view_layer, active_object=ob, object=ob
            ),
        ):
            bpy.ops.object.mode_set(mode="EDIT")
            try:
                if ob.mode != "EDIT":
                    raise RuntimeError("cannot enter edit mode on the armature")
                yield
            finally:
                bpy.ops.object.mode_set(mode="OBJECT")
    finally:
        bpy.data.objects.remove(ob)
        if previous is not None and previous.name in view_layer.objects:
            view_layer.objects.active = previous


def _apply_arm_meta(arm: bpy.types.Armature, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(arm, doc["name"])
    rna.write_props(arm, doc["props"], ctx.resolve)
    return arm


def _bones_differ(arm: bpy.types.Armature, doc: list) -> bool:
    current = {b.name: b for b in arm.bones}
    if set(current) != {d["name"] for d in doc}:
        return True
    for d in doc:
        bone = current[d["name"]]
        parent = bone.parent.name if bone.parent is not None else None
        if (
            parent != d["parent"]
            or [float(x) for x in bone.head_local] != d["head"]
            or [float(x) for x in bone.tail_local] != d["tail"]
            or bone_roll(bone) != d["roll"]
            or bone.use_connect != d["use_connect"]
        ):
            return True
    return False


def _apply_arm_bones(arm: bpy.types.Armature, doc: list, ctx: _Context) -> bpy.types.ID:
    if _bones_differ(arm, doc):
        with _armature_edit_mode(arm):
            edit_bones = arm.edit_bones
            wanted = {d["name"] for d in doc}
            for eb in list(edit_bones):
                if eb.name not in wanted:
                    edit_bones.remove(eb)
            for d in doc:
                if d["name"] not in edit_bones:
                    _rename(edit_bones.new(d["name"]), d["name"])
            for d in doc:
                eb = edit_bones[d["name"]]
                eb.use_connect = False
                eb.parent = edit_bones.get(d["parent"]) if d["parent"] else None
            for d in doc:
                eb = edit_bones[d["name"]]
                eb.head = d["head"]
                eb.tail = d["tail"]
                eb.roll = d["roll"]
            for d in doc:
                edit_bones[d["name"]].use_connect = d["use_connect"]
    bones = arm.bones
    for d in doc:
        bone = bones.get(d["name"])
        if bone is not None:
            for attr in BONE_PROPS:
                _set(bone, attr, d[attr])
    return arm


# ---------------------------------------------------------------- meshes


def _apply_mesh_meta(me: bpy.types.Mesh, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(me, doc["name"])
    _set_materials(me.materials, [ctx.resolve(u) for u in doc["materials"]])
    return me


def write_attribute(attr, data: bytes) -> None:
    _width, key, code = ATTRIBUTE_LAYOUT[attr.data_type]
    if not len(attr.data):
        return
    if code == "f":
        values = unpack_f32(data)
    elif code == "b":
        values = [bool(b) for b in data]
    else:
        values = unpack_i32(data)
        if code == "l":
            values = list(values)
    attr.data.foreach_set(key, values)


def _apply_mesh_geometry(me: bpy.types.Mesh, doc: dict, ctx: _Context) -> bpy.types.ID:
    me.clear_geometry()
    nv = len(doc["vertices"]) // 12
    ne = len(doc["edges"]) // 8
    npoly = len(doc["face_starts"]) // 4
    nl = len(doc["corner_verts"]) // 4
    me.vertices.add(nv)
    _fset(me.vertices, "co", doc["vertices"])
    me.edges.add(ne)
    _iset(me.edges, "vertices", doc["edges"])
    me.loops.add(nl)
    _iset(me.loops, "vertex_index", doc["corner_verts"])
    _iset(me.loops, "edge_index", doc["corner_edges"])
    me.polygons.add(npoly)
    _iset(me.polygons, "loop_start", doc["face_starts"])
    wanted = {a["name"] for a in doc["attributes"]}
    for attr in list(me.attributes):
        if not attr.name.startswith(".") and attr.name != "position" and attr.name not in wanted:
            me.attributes.remove(attr)
    for spec in doc["attributes"]:
        attr = me.attributes.get(spec["name"])
        if attr is not None and (attr.domain != spec["domain"] or attr.data_type != spec["type"]):
            me.attributes.remove(attr)
            attr = None
        if attr is None:
            try:
                attr = me.attributes.new(spec["name"], spec["type"], spec["domain"])
            except (TypeError, RuntimeError):
                continue
        write_attribute(attr, spec["data"])
    uv = me.uv_layers
    if doc["active_uv"] and doc["active_uv"] in uv:
        uv.active = uv[doc["active_uv"]]
    if doc["render_uv"] and doc["render_uv"] in uv:
        uv[doc["render_uv"]].active_render = True
    colors = me.color_attributes
    if doc["active_color"] and doc["active_color"] in colors:
        colors.active_color_name = doc["active_color"]
    if doc["default_color"] and doc["default_color"] in colors:
        colors.default_color_name = doc["default_color"]
    me.update()
    return me


def _with_temp_object(data: bpy.types.ID, action: Callable[[bpy.types.Object], None]) -> None:
    """Run ``action`` on a throw-away object using ``data`` (shape key operations live on objects)."""
    ob = bpy.data.objects.new("blendsync-temp", data)
    try:
        action(ob)
    finally:
        bpy.data.objects.remove(ob)


def _make_shape_keys(names: list[str]) -> Callable[[bpy.types.Object], None]:
    def make(ob: bpy.types.Object) -> None:
        ob.shape_key_clear()
        for name in names:
            kb = ob.shape_key_add(name=name, from_mix=False)
            _rename(kb, name)

    return make


def _apply_mesh_shapes(me: bpy.types.Mesh, doc: dict | None, ctx: _Context) -> bpy.types.ID:
    if doc is None:
        if me.shape_keys is not None:
            _with_temp_object(me, lambda ob: ob.shape_key_clear())
        return me
    nv = len(me.vertices)
    blocks = doc["blocks"]
    if any(len(b["co"]) != 12 * nv for b in blocks):
        # The geometry with this many vertices has not arrived yet: apply again once it has.
        ctx.missing.add(SHAPES_PREFIX + ids.get_uuid(me))
        return me
    key = me.shape_keys
    current = [(kb.name, len(kb.data)) for kb in key.key_blocks] if key is not None else []
    if current != [(b["name"], nv) for b in blocks]:
        _with_temp_object(me, _make_shape_keys([b["name"] for b in blocks]))
        key = me.shape_keys
    _set(key, "use_relative", doc["use_relative"])
    _set(key, "eval_time", doc["eval_time"])
    for kb, b in zip(key.key_blocks, blocks, strict=True):
        for attr in SHAPE_KEY_PROPS:
            _set(kb, attr, b[attr])
        if kb.slider_min != b["slider_min"]:  # refused while above the old maximum
            _set(kb, "slider_min", b["slider_min"])
        _set(kb, "value", b["value"])
        relative = key.key_blocks.get(b["relative_key"]) if b["relative_key"] else None
        if relative is not None and kb.relative_key != relative:
            kb.relative_key = relative
        _fset(kb.data, "co", b["co"])
    return me


# ---------------------------------------------------------------- node trees


def _find_socket(sockets, identifier: str):
    if identifier.startswith("#"):  # a socket of a group node, by position (see serialise.socket_id)
        index = int(identifier[1:])
        return sockets[index] if index < len(sockets) else None
    return next((s for s in sockets if s.identifier == identifier), None)


def _set_socket_values(sockets, values: list, ctx: _Context) -> None:
    for identifier, value in values:
        sock = _find_socket(sockets, identifier)
        if sock is None or not hasattr(sock, "default_value"):
            continue
        if isinstance(sock.default_value, bpy.types.ID) or (value is not None and _is_id_socket(sock)):
            value = ctx.resolve(value)
        try:
            sock.default_value = value
        except (TypeError, ValueError, AttributeError):
            continue


def _is_id_socket(sock) -> bool:
    return sock.bl_idname in {
        "NodeSocketObject",
        "NodeSocketImage",
        "NodeSocketMaterial",
        "NodeSocketCollection",
    }


def _apply_color_ramp(ramp, doc: dict) -> None:
    ramp.color_mode = doc["color_mode"]
    ramp.interpolation = doc["interpolation"]
    ramp.hue_interpolation = doc["hue_interpolation"]
    elements = ramp.elements
    wanted = doc["elements"]
    while len(elements) > max(1, len(wanted)):
        elements.remove(elements[-1])
    while len(elements) < len(wanted):
        elements.new(1.0)
    for element, (position, color) in zip(elements, wanted, strict=False):
        element.position = position
        element.color = color


def apply_node_tree(tree: bpy.types.NodeTree | None, doc: dict | None, ctx: _Context) -> None:
    """Rebuild a node tree from its document (nodes, settings, socket values, links)."""
    if tree is None or doc is None:
        return
    tree.links.clear()
    tree.nodes.clear()
    made = {}
    for nd in doc["nodes"]:
        try:
            node = tree.nodes.new(nd["type"])
        except RuntimeError:
            continue
        node.name = nd["name"]
        made[nd["name"]] = node
    for nd in doc["nodes"]:
        node = made.get(nd["name"])
        if node is None:
            continue
        if nd["parent"] in made:
            node.parent = made[nd["parent"]]
        node.label = nd["label"]
        node.location = nd["location"]
        node.width = nd["width"]
        node.hide = nd["hide"]
        node.mute = nd["mute"]
        rna.write_props(node, nd["props"], ctx.resolve, first=("data_type", "operation", "blend_type"))
        if "color_ramp" in nd and getattr(node, "color_ramp", None) is not None:
            _apply_color_ramp(node.color_ramp, nd["color_ramp"])
        _set_socket_values(node.inputs, nd["inputs"], ctx)
        _set_socket_values(node.outputs, nd["outputs"], ctx)
    for from_node, from_id, to_node, to_id, muted in doc["links"]:
        if from_node not in made or to_node not in made:
            continue
        out = _find_socket(made[from_node].outputs, from_id)
        inp = _find_socket(made[to_node].inputs, to_id)
        if out is None or inp is None:
            continue
        link = tree.links.new(out, inp)
        link.is_muted = muted


# ---------------------------------------------------------------- node groups


def _interface_shape(items: list[dict]) -> list[tuple]:
    return [(d["item_type"], d["name"], d["parent"], d.get("in_out"), d.get("socket_type")) for d in items]


def _rebuild_interface(iface, items: list[dict]) -> None:
    iface.clear()
    made = []
    for d in items:
        parent = made[d["parent"]] if d["parent"] is not None and d["parent"] < len(made) else None
        if d["item_type"] == "SOCKET":
            item = iface.new_socket(
                d["name"], in_out=d["in_out"], socket_type=d["socket_type"], parent=parent
            )
        else:
            item = iface.new_panel(d["name"])
            if parent is not None:
                iface.move_to_parent(item, parent, len(parent.interface_items))
        made.append(item)


def _apply_ngroup_meta(tree: bpy.types.NodeTree, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(tree, doc["name"])
    iface = tree.interface
    wanted = doc["interface"]
    if _interface_shape(ser_interface(tree)) != _interface_shape(wanted):
        _rebuild_interface(iface, wanted)
    for item, d in zip(iface.items_tree, wanted, strict=False):
        rna.write_props(item, d["props"], ctx.resolve, first=("subtype",))
    return tree


def _apply_ngroup_nodes(tree: bpy.types.NodeTree, doc: dict, ctx: _Context) -> bpy.types.ID:
    apply_node_tree(tree, doc, ctx)
    return tree


# ---------------------------------------------------------------- shading, lights, cameras


def _apply_mat_meta(mat: bpy.types.Material, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(mat, doc["name"])
    rna.write_props(mat, doc["props"], ctx.resolve)
    style = doc.get("grease_pencil")
    if style is not None:
        if not mat.is_grease_pencil:
            bpy.data.materials.create_gpencil_data(mat)
        rna.write_props(mat.grease_pencil, style, ctx.resolve)
    return mat


def _apply_mat_nodes(mat: bpy.types.Material, doc: dict | None, ctx: _Context) -> bpy.types.ID:
    apply_node_tree(mat.node_tree, doc, ctx)
    return mat


def _apply_world_meta(world: bpy.types.World, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(world, doc["name"])
    _set(world, "color", doc["color"])
    rna.write_props(world, doc["props"], ctx.resolve)
    return world


def _apply_light_meta(light: bpy.types.Light, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(light, doc["name"])
    if light.type != doc["type"]:
        light.type = doc["type"]
        light = bpy.data.lights[doc["name"]]  # the struct changed class; fetch it again
    rna.write_props(light, doc["props"], ctx.resolve)
    return light


def _apply_cam_meta(cam: bpy.types.Camera, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(cam, doc["name"])
    rna.write_props(cam, doc["props"], ctx.resolve, first=("sensor_fit", "sensor_width", "sensor_height"))
    return cam


# ---------------------------------------------------------------- collections, scenes


def _apply_coll_meta(coll: bpy.types.Collection, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(coll, doc["name"])
    for attr in ("hide_viewport", "hide_render", "hide_select", "color_tag"):
        _set(coll, attr, doc[attr])
    wanted = {}
    for ref in doc["parents"]:
        parent = ctx.resolve_collection(ref)
        if parent is not None:
            wanted[parent.as_pointer()] = parent
    ptr = coll.as_pointer()
    current = {}
    for scene in bpy.data.scenes:
        if ids.peek_uuid(scene) is not None:
            current[scene.collection.as_pointer()] = scene.collection
    for other in bpy.data.collections:
        if ids.peek_uuid(other) is not None:
            current[other.as_pointer()] = other
    for parent_ptr, parent in current.items():
        linked = any(c.as_pointer() == ptr for c in parent.children)
        if linked and parent_ptr not in wanted:
            parent.children.unlink(coll)
        elif not linked and parent_ptr in wanted:
            with contextlib.suppress(RuntimeError):  # RuntimeError: the link would make a cycle
                parent.children.link(coll)
    return coll


def _apply_scene_meta(scene: bpy.types.Scene, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(scene, doc["name"])
    for attr in ("frame_start", "frame_end", "frame_step"):
        _set(scene, attr, doc[attr])
    render = scene.render
    _set(render, "fps", doc["fps"])
    _set(render, "fps_base", doc["fps_base"])
    rx, ry, rp = doc["resolution"]
    _set(render, "resolution_x", rx)
    _set(render, "resolution_y", ry)
    _set(render, "resolution_percentage", rp)
    camera = ctx.resolve(doc["camera"])
    if scene.camera != camera:
        scene.camera = camera
    world = ctx.resolve(doc["world"])
    if scene.world != world:
        scene.world = world
    clip = ctx.resolve(doc.get("active_clip"))
    if scene.active_clip != clip:
        scene.active_clip = clip
    return scene


def _apply_scene_frame(scene: bpy.types.Scene, doc: dict, ctx: _Context) -> bpy.types.ID:
    _set(scene, "frame_current", doc["current"])
    return scene


# ---------------------------------------------------------------- images, texts


def _apply_img_meta(img: bpy.types.Image, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(img, doc["name"])
    gen = doc["generated"]
    if gen is not None:
        _set(img, "source", "GENERATED")
        _set(img, "generated_type", gen["type"])
        _set(img, "generated_width", gen["width"])
        _set(img, "generated_height", gen["height"])
        _set(img, "generated_color", gen["color"])
        _set(img, "use_generated_float", gen["float"])
    _set(img.colorspace_settings, "name", doc["colorspace"])
    _set(img, "alpha_mode", doc["alpha_mode"])
    return img


def _apply_img_data(img: bpy.types.Image, doc: dict, ctx: _Context) -> bpy.types.ID:
    content = image_content(img)
    data = doc["bytes"]
    if content is not None and hashlib.sha256(content).hexdigest() == doc["sha256"]:
        return img
    had_file = img.packed_file is not None
    img.pack(data=data, data_len=len(data))
    img.source = "FILE"
    if had_file:
        img.reload()
    return img


def _apply_text_meta(text: bpy.types.Text, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(text, doc["name"])
    return text


def _apply_text_body(text: bpy.types.Text, doc: dict, ctx: _Context) -> bpy.types.ID:
    if text.as_string() != doc["content"]:
        text.from_string(doc["content"])
    return text


# ---------------------------------------------------------------- actions


def _apply_action_meta(action: bpy.types.Action, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(action, doc["name"])
    wanted = {identifier for identifier, _ in doc["slots"]}
    for slot in list(action.slots):
        if slot.identifier not in wanted:
            action.slots.remove(slot)
    present = {slot.identifier for slot in action.slots}
    for identifier, id_type in doc["slots"]:
        if identifier not in present:
            action.slots.new(id_type=id_type, name=identifier[2:])
    _set(action, "use_frame_range", doc["use_frame_range"])
    if doc["frame_range"] is not None:
        _set(action, "frame_range", doc["frame_range"])
    return action


def _apply_action_curves(action: bpy.types.Action, doc: dict, ctx: _Context) -> bpy.types.ID:
    if not action.layers:
        action.layers.new("Layer")
    layer = action.layers[0]
    if not layer.strips:
        layer.strips.new(type="KEYFRAME")
    strip = layer.strips[0]
    slots = {slot.identifier: slot for slot in action.slots}
    wanted = {bag["slot"] for bag in doc["channelbags"]}
    for bag in list(strip.channelbags):
        if bag.slot is None or bag.slot.identifier not in wanted:
            strip.channelbags.remove(bag)
    for bag_doc in doc["channelbags"]:
        slot = slots.get(bag_doc["slot"])
        if slot is None:
            continue
        bag = strip.channelbag(slot, ensure=True)
        bag.fcurves.clear()
        for fdoc in bag_doc["fcurves"]:
            fc = bag.fcurves.new(fdoc["data_path"], index=fdoc["index"], group_name=fdoc["group"] or "")
            fc.extrapolation = fdoc["extrapolation"]
            fc.mute = fdoc["mute"]
            keys = fdoc["keys"]
            n = len(keys["interpolation"])
            points = fc.keyframe_points
            points.add(n)
            _fset(points, "co", keys["co"])
            for i, point in enumerate(points):
                point.interpolation = keys["interpolation"][i]
                point.easing = keys["easing"][i]
                point.handle_left_type = keys["handle_left_type"][i]
                point.handle_right_type = keys["handle_right_type"][i]
            _fset(points, "handle_left", keys["handle_left"])
            _fset(points, "handle_right", keys["handle_right"])
    return action


# ---------------------------------------------------------------- curves


def _apply_curve_meta(curve: bpy.types.Curve, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(curve, doc["name"])
    _set_materials(curve.materials, [ctx.resolve(u) for u in doc["materials"]])
    rna.write_props(curve, doc["props"], ctx.resolve, first=("dimensions",))
    return curve


def _apply_curve_splines(curve: bpy.types.Curve, doc: list, ctx: _Context) -> bpy.types.ID:
    curve.splines.clear()
    for sdoc in doc:
        spline = curve.splines.new(sdoc["type"])
        if "bezier" in sdoc:
            bez = sdoc["bezier"]
            n = len(bez["handle_left_type"])
            points = spline.bezier_points
            points.add(n - len(points))
            for i, point in enumerate(points):
                point.handle_left_type = bez["handle_left_type"][i]
                point.handle_right_type = bez["handle_right_type"][i]
            for attr in ("co", "handle_left", "handle_right", "radius", "tilt"):
                _fset(points, attr, bez[attr])
        else:
            pdoc = sdoc["points"]
            n = len(pdoc["co"]) // 16
            points = spline.points
            points.add(n - len(points))
            for attr in ("co", "radius", "tilt", "weight"):
                _fset(points, attr, pdoc[attr])
        for flag in SPLINE_FLAGS:
            if flag != "type" and flag in sdoc:
                _set(spline, flag, sdoc[flag])
    return curve


def _apply_curve_text(curve: bpy.types.Curve, doc: dict, ctx: _Context) -> bpy.types.ID:
    if curve_type(curve) == "FONT" and curve.body != doc["body"]:
        curve.body = doc["body"]
    return curve


# ---------------------------------------------------------------- sounds, textures


def _replace(old: bpy.types.ID, new: bpy.types.ID, collection) -> bpy.types.ID:
    """Put ``new`` in the place of ``old``: same uuid, every user relinked; ``old`` is removed."""
    uuid = ids.peek_uuid(old)
    old.user_remap(new)
    collection.remove(old)
    if uuid is not None:
        ids.set_uuid(new, uuid)
    return new


def _apply_sound_meta(sound: bpy.types.Sound, doc: dict, ctx: _Context) -> bpy.types.ID:
    content = sound_content(sound)
    if content is None or hashlib.sha256(content).hexdigest() != doc["sha256"]:
        sound = _replace(sound, _load_sound(doc), bpy.data.sounds)
    _rename(sound, doc["name"])
    _set(sound, "use_mono", doc["use_mono"])
    _set(sound, "use_memory_cache", doc["use_memory_cache"])
    return sound


def _apply_font_meta(font: bpy.types.VectorFont, doc: dict, ctx: _Context) -> bpy.types.ID:
    builtin = font.filepath == ids.BUILTIN_FONT
    if builtin != doc["builtin"] or (
        not builtin and hashlib.sha256(font_content(font) or b"").hexdigest() != doc["sha256"]
    ):
        font = _replace(font, _load_font(doc), bpy.data.fonts)
    _rename_font(font, doc["name"])
    return font


def _apply_clip_meta(clip: bpy.types.MovieClip, doc: dict, ctx: _Context) -> bpy.types.ID:
    files = clip_content(clip)
    if files is None or clip_digest(files) != doc["sha256"] or clip.source != doc["source"]:
        clip = _replace(clip, _load_clip(doc), bpy.data.movieclips)
    _rename(clip, doc["name"])
    _set(clip.colorspace_settings, "name", doc["colorspace"])
    rna.write_props(clip, doc["props"], ctx.resolve)
    return clip


def _apply_tex_meta(tex: bpy.types.Texture, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(tex, doc["name"])
    if tex.type != doc["type"]:
        tex.type = doc["type"]
        tex = bpy.data.textures[doc["name"]]  # the struct changed class; fetch it again
    rna.write_props(tex, doc["props"], ctx.resolve)
    return tex


# ---------------------------------------------------------------- metaballs, lattices, probes, speakers


def _apply_mball_meta(mb: bpy.types.MetaBall, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(mb, doc["name"])
    _set_materials(mb.materials, [ctx.resolve(u) for u in doc["materials"]])
    rna.write_props(mb, doc["props"], ctx.resolve)
    return mb


def _apply_mball_elements(mb: bpy.types.MetaBall, doc: list, ctx: _Context) -> bpy.types.ID:
    elements = mb.elements
    if [e.type for e in elements] != [d["type"] for d in doc]:
        elements.clear()
        for d in doc:
            elements.new(type=d["type"])
    for element, d in zip(elements, doc, strict=False):
        for attr in METABALL_ELEMENT[1:]:
            _set(element, attr, d[attr])
    return mb


def _apply_lattice_meta(lattice: bpy.types.Lattice, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(lattice, doc["name"])
    for attr, value in zip(LATTICE_SIZE, doc["size"], strict=True):
        _set(lattice, attr, value)  # only when different: setting a size resets the points
    rna.write_props(lattice, doc["props"], ctx.resolve)
    return lattice


def _apply_lattice_points(lattice: bpy.types.Lattice, doc: dict, ctx: _Context) -> bpy.types.ID:
    if len(doc["co_deform"]) == 12 * len(lattice.points):
        _fset(lattice.points, "co_deform", doc["co_deform"])
        _fset(lattice.points, "weight_softbody", doc["weight_softbody"])
    else:  # the size in meta has not arrived yet: apply again once it has
        ctx.missing.add(LATTICE_PREFIX + ids.get_uuid(lattice))
    return lattice


def _apply_gpencil_meta(gp: bpy.types.GreasePencil, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(gp, doc["name"])
    _set_materials(gp.materials, [ctx.resolve(u) for u in doc["materials"]])
    rna.write_props(gp, doc["props"], ctx.resolve)
    layers = gp.layers
    if [layer.name for layer in layers] != [d["name"] for d in doc["layers"]]:
        # Keep the layers (and their frames) that stay; make the new ones, then put them in order.
        wanted = {d["name"] for d in doc["layers"]}
        for layer in list(layers):
            if layer.name not in wanted:
                layers.remove(layer)
        for d in doc["layers"]:
            if d["name"] not in layers:
                layers.new(d["name"])
        for d in doc["layers"]:
            layers.move_top(layers[d["name"]])  # the last one moved ends on top
        if [layer.name for layer in layers] != [d["name"] for d in doc["layers"]]:
            for d in reversed(doc["layers"]):
                layers.move_bottom(layers[d["name"]])
    for d in doc["layers"]:
        rna.write_props(layers[d["name"]], d["props"], ctx.resolve)
    return gp


def _apply_drawing(drawing, doc: dict) -> None:
    sizes = list(unpack_i32(doc["sizes"]))
    if stroke_sizes(drawing) != sizes:
        if len(drawing.curve_offsets) > 1:
            drawing.remove_strokes()
        if sizes:
            drawing.add_strokes(sizes)
    wanted = {a["name"] for a in doc["attributes"]}
    for attr in list(drawing.attributes):
        if attr.name not in wanted and not attr.name.startswith(".") and attr.name != "position":
            with contextlib.suppress(RuntimeError, ValueError):
                drawing.attributes.remove(attr)
    for adoc in doc["attributes"]:
        attr = drawing.attributes.get(adoc["name"])
        if attr is not None and (attr.domain, attr.data_type) != (adoc["domain"], adoc["type"]):
            drawing.attributes.remove(attr)
            attr = None
        if attr is None:
            attr = drawing.attributes.new(adoc["name"], adoc["type"], adoc["domain"])
        if adoc["type"] in ATTRIBUTE_LAYOUT:
            write_attribute(attr, adoc["data"])
    drawing.tag_positions_changed()


def _apply_gpencil_strokes(gp: bpy.types.GreasePencil, doc: dict, ctx: _Context) -> bpy.types.ID:
    layers = gp.layers
    if [layer.name for layer in layers] != [d["name"] for d in doc["layers"]]:
        # The layers in meta have not arrived yet (or differ): apply again once they have.
        ctx.missing.add(GPENCIL_PREFIX + ids.get_uuid(gp))
        return gp
    for layer, ldoc in zip(layers, doc["layers"], strict=True):
        wanted = {f["frame_number"] for f in ldoc["frames"]}
        for frame in list(layer.frames):
            if frame.frame_number not in wanted:
                layer.frames.remove(frame.frame_number)
        present = {frame.frame_number: frame for frame in layer.frames}
        for fdoc in ldoc["frames"]:
            frame = present.get(fdoc["frame_number"]) or layer.frames.new(fdoc["frame_number"])
            _set(frame, "keyframe_type", fdoc["keyframe_type"])
            if frame.drawing is not None:
                _apply_drawing(frame.drawing, fdoc)
    return gp


def _apply_lprobe_meta(probe: bpy.types.LightProbe, doc: dict, ctx: _Context) -> bpy.types.ID:
    if probe.type != doc["type"]:  # the type of a probe is fixed when it is made
        probe = _replace(probe, bpy.data.lightprobes.new(doc["name"], doc["type"]), bpy.data.lightprobes)
    _rename(probe, doc["name"])
    rna.write_props(probe, doc["props"], ctx.resolve)
    return probe


def _apply_speaker_meta(speaker: bpy.types.Speaker, doc: dict, ctx: _Context) -> bpy.types.ID:
    _rename(speaker, doc["name"])
    rna.write_props(speaker, doc["props"], ctx.resolve)
    return speaker


# ---------------------------------------------------------------- libraries


def _apply_lib_meta(lib: bpy.types.Library, doc: dict, ctx: _Context) -> bpy.types.ID:
    content = library_content(lib)
    if content is None or hashlib.sha256(content).hexdigest() != doc["sha256"]:
        lib.filepath = _write_library(doc)
        lib.reload()
    if lib.name != doc["name"]:
        with contextlib.suppress(AttributeError, RuntimeError):
            lib.name = doc["name"]
    wanted = {tuple(entry) for entry in doc["linked"]}
    present = {tuple(linked_entry(id_data)): id_data for id_data in ids.library_linked(lib)}
    for entry, id_data in present.items():
        if entry not in wanted:
            getattr(bpy.data, entry[0]).remove(id_data)
    _link_from(lib.filepath, [list(e) for e in sorted(wanted) if e not in present])
    # Where the linked collections and objects are linked into this scene's collections.
    links = {(attr, name): parents for attr, name, parents in doc["links"]}
    synced_masters = {s.collection.as_pointer() for s in bpy.data.scenes if ids.peek_uuid(s)}
    for id_data in ids.library_linked(lib):
        entry = tuple(linked_entry(id_data))
        targets = {}
        for ref in links.get(entry, []):
            coll = ctx.resolve_collection(ref)
            if coll is not None:
                targets[coll.as_pointer()] = coll
        if isinstance(id_data, bpy.types.Collection):
            holders = [c for c in bpy.data.collections if id_data in c.children[:]]
            holders += [s.collection for s in bpy.data.scenes if id_data in s.collection.children[:]]
        elif isinstance(id_data, bpy.types.Object):
            holders = list(id_data.users_collection)
        else:
            continue
        members = "children" if isinstance(id_data, bpy.types.Collection) else "objects"
        for coll in holders:
            ptr = coll.as_pointer()
            synced = ptr in synced_masters or (coll.library is None and ids.peek_uuid(coll) is not None)
            if ptr not in targets and synced:
                getattr(coll, members).unlink(id_data)
        present_ptrs = {c.as_pointer() for c in holders}
        for ptr, coll in targets.items():
            if ptr not in present_ptrs:
                getattr(coll, members).link(id_data)
    return lib


# ---------------------------------------------------------------- tables

PartApplier = Callable[[bpy.types.ID, object, _Context], bpy.types.ID]

APPLIERS: dict[str, dict[str, PartApplier]] = {
    "text": {"meta": _apply_text_meta, "body": _apply_text_body},
    "img": {"meta": _apply_img_meta, "data": _apply_img_data},
    "sound": {"meta": _apply_sound_meta},
    "font": {"meta": _apply_font_meta},
    "clip": {"meta": _apply_clip_meta},
    "tex": {"meta": _apply_tex_meta},
    "action": {"meta": _apply_action_meta, "curves": _apply_action_curves},
    "ngroup": {"meta": _apply_ngroup_meta, "nodes": _apply_ngroup_nodes},
    "mat": {"meta": _apply_mat_meta, "nodes": _apply_mat_nodes},
    "world": {
        "meta": _apply_world_meta,
        "nodes": lambda w, d, c: (apply_node_tree(w.node_tree, d, c), w)[1],
    },
    "mesh": {"meta": _apply_mesh_meta, "geometry": _apply_mesh_geometry, "shapes": _apply_mesh_shapes},
    "curve": {"meta": _apply_curve_meta, "splines": _apply_curve_splines, "text": _apply_curve_text},
    "mball": {"meta": _apply_mball_meta, "elements": _apply_mball_elements},
    "lattice": {"meta": _apply_lattice_meta, "points": _apply_lattice_points},
    "gpencil": {"meta": _apply_gpencil_meta, "strokes": _apply_gpencil_strokes},
    "lprobe": {"meta": _apply_lprobe_meta},
    "speaker": {"meta": _apply_speaker_meta},
    "light": {"meta": _apply_light_meta},
    "cam": {"meta": _apply_cam_meta},
    "arm": {"meta": _apply_arm_meta, "bones": _apply_arm_bones},
    "coll": {"meta": _apply_coll_meta},
    "obj": {
        "meta": _apply_obj_meta,
        "transform": _apply_obj_transform,
        "modifiers": _apply_obj_modifiers,
        "anim": _apply_obj_anim,
        "pose": _apply_obj_pose,
    },
    "scene": {"meta": _apply_scene_meta, "frame": _apply_scene_frame},
    "lib": {"meta": _apply_lib_meta},
}
assert all(set(APPLIERS[k]) == set(PARTS[k]) for k in PARTS)


def _remove(kind: str, id_data: bpy.types.ID) -> None:
    if kind == "scene" and len(bpy.data.scenes) <= 1:
        # Blender needs one scene: keep it, empty of room identity, ready to be taken over.
        del id_data[ids.UUID_PROP]
        id_data[ADOPT_PROP] = True
        return
    getattr(bpy.data, ids.DATA_COLLECTIONS[kind]).remove(id_data)


# ---------------------------------------------------------------- applier


def _sort_ops(ops: Iterable[Op]) -> list[Op]:
    """Collapse to the last operation per key and order them for application.

    Sets come first, datablocks before those that link to them and each
    datablock's primary part before its other parts; then deletes, linking
    datablocks first.  A part set for a datablock whose primary key is
    deleted in the same batch is dropped.
    """
    last: dict[str, bytes | None] = {}
    for key, value in ops:
        last.pop(key, None)
        last[key] = value
    gone = set()
    for key, value in last.items():
        parsed = parse_key(key)
        if value is None and parsed is not None and parsed[2] == PRIMARY_PART:
            gone.add((parsed[0], parsed[1]))
    sets, deletes = [], []
    for key, value in last.items():
        if value is None:
            deletes.append((key, value))
            continue
        parsed = parse_key(key)
        if parsed is not None and (parsed[0], parsed[1]) in gone:
            continue
        sets.append((key, value))
    sets.sort(key=lambda op: op_order(op[0]))
    deletes.sort(key=lambda op: tuple(-x for x in op_order(op[0])))
    return sets + deletes


class Applier:
    """Applies remote operations, optionally in slices.

    ``feed(ops)`` queues operations; ``step(max_ops)`` applies up to
    ``max_ops`` of them and returns the fraction of everything fed so far
    that is done (1.0 when the queue is empty).  ``apply(ops)`` does both at
    once.  Links to datablocks that have not arrived are remembered and
    resolved when the datablock is created.  With a ``tracker``, every
    applied value is recorded there so that it is not reported back.
    """

    def __init__(self, tracker: ChangeTracker | None = None) -> None:
        self.tracker = tracker
        self._queue: list[Op] = []
        self._total = 0
        self._done = 0
        self._index: dict[str, tuple[str, bpy.types.ID]] = {}
        self._waiting_parts: dict[str, dict[str, bytes]] = {}  # uuid not created yet -> its part ops
        self._pending: dict[str, set[str]] = {}  # missing uuid -> keys that link to it
        self._pending_values: dict[str, bytes] = {}  # key -> latest value of a key with a missing link
        self.errors: list[tuple[str, str]] = []  # (key, message) of operations that failed

    # ------------------------------------------------------------ queue

    def feed(self, ops: Iterable[Op]) -> None:
        ops = list(ops)
        self._queue = _sort_ops(self._queue + ops)
        self._total = self._done + len(self._queue)

    @property
    def progress(self) -> float:
        return 1.0 if self._total == 0 else self._done / self._total

    @property
    def pending_links(self) -> dict[str, set[str]]:
        """Missing uuid -> keys waiting for it (for diagnostics)."""
        return {k: set(v) for k, v in self._pending.items() if v}

    def step(self, max_ops: int | None = None) -> float:
        count = len(self._queue) if max_ops is None else max(0, min(max_ops, len(self._queue)))
        batch, self._queue = self._queue[:count], self._queue[count:]
        self._begin()
        for key, value in batch:
            self._apply_one(key, value)
            self._done += 1
        self._end()
        if not self._queue:
            self._total = self._done = 0
            return 1.0
        return self.progress

    def apply(self, ops: Iterable[Op]) -> None:
        self.feed(ops)
        self.step()

    # ------------------------------------------------------------ internals

    def _begin(self) -> None:
        for scene in bpy.data.scenes:
            if ids.peek_uuid(scene) is None:
                scene[ADOPT_PROP] = True
        self._index = ids.index_all(assign=False)
        self._touched: dict[str, bpy.types.ID] = {}

    def _retry_poses(self) -> None:
        """Poses wait for their object to be evaluated with its armature's bones: try those again."""
        waiting = [token for token, keys in self._pending.items() if keys and token.startswith(POSE_PREFIX)]
        for token in waiting:
            self._resolve_pending(token)

    def _end(self) -> None:
        self._retry_poses()
        if self.tracker is not None and self._touched:
            alive = [id_data for uuid, id_data in self._touched.items() if uuid in self._index]
            self.tracker.note_datablocks(alive)
        self._touched = {}

    def _register(self, kind: str, uuid: str, id_data: bpy.types.ID) -> None:
        ids.set_uuid(id_data, uuid)
        self._index[uuid] = (kind, id_data)
        self._touched[uuid] = id_data

    def _apply_one(self, key: str, value: bytes | None) -> None:
        parsed = parse_key(key)
        if parsed is None:
            return
        kind, uuid, part = parsed
        if self.tracker is not None:
            self.tracker.note_applied(key, value)
        if value is None:
            self._pending_values.pop(key, None)
            if part != PRIMARY_PART:
                return
            self._waiting_parts.pop(uuid, None)
            found = self._index.pop(uuid, None)
            self._touched.pop(uuid, None)
            if found is not None:
                _remove(kind, found[1])
            if self.tracker is not None:
                self.tracker.forget_uuid(uuid)
            return
        found = self._index.get(uuid)
        if found is None and part != PRIMARY_PART:
            self._waiting_parts.setdefault(uuid, {})[key] = value
            return
        try:
            doc = decode_value(value)
            ctx = _Context(self)
            created = False
            if found is None:
                id_data = CREATORS[kind](uuid, doc, ctx)
                self._register(kind, uuid, id_data)
                created = True
            else:
                id_data = found[1]
            id_data = APPLIERS[kind][part](id_data, doc, ctx)
        except Exception as exc:  # a bad value must not stop the rest of the batch
            self.errors.append((key, f"{type(exc).__name__}: {exc}"))
            return
        self._index[uuid] = (kind, id_data)
        self._touched[uuid] = id_data
        for missing in ctx.missing:
            self._pending.setdefault(missing, set()).add(key)
        if ctx.missing:
            self._pending_values[key] = value
        else:
            self._pending_values.pop(key, None)
        for stub_uuid in ctx.created:
            self._on_created(stub_uuid)
        if created:
            self._on_created(uuid)
        if part == PRIMARY_PART and kind in ("mesh", "curve", "mball", "gpencil"):
            self._resolve_pending(SLOTS_PREFIX + uuid)
        if part == PRIMARY_PART and kind == "lattice":
            self._resolve_pending(LATTICE_PREFIX + uuid)
        if part == PRIMARY_PART and kind == "gpencil":
            self._resolve_pending(GPENCIL_PREFIX + uuid)
        if part == "geometry" and kind == "mesh":
            self._resolve_pending(SHAPES_PREFIX + uuid)

    def _on_created(self, uuid: str) -> None:
        for key, value in sorted(self._waiting_parts.pop(uuid, {}).items(), key=lambda kv: op_order(kv[0])):
            self._apply_one(key, value)
        self._resolve_pending(uuid)

    def _resolve_pending(self, uuid: str) -> None:
        for key in sorted(self._pending.pop(uuid, set()), key=op_order):
            value = self._pending_values.get(key)
            if value is not None:
                self._apply_one(key, value)

    def reset(self) -> None:
        """Drop the queue and every remembered pending link (e.g. after leaving a room)."""
        self._queue = []
        self._total = self._done = 0
        self._waiting_parts.clear()
        self._pending.clear()
        self._pending_values.clear()


def apply_ops(
    ops: Iterable[Op], tracker: ChangeTracker | None = None, applier: Applier | None = None
) -> Applier:
    """Apply remote operations in an order that works; return the applier used.

    Pass the same ``applier`` across calls to keep links that wait for a
    datablock that has not arrived yet.
    """
    applier = applier or Applier(tracker)
    if tracker is not None and applier.tracker is None:
        applier.tracker = tracker
    applier.apply(ops)
    return applier


def clear_scene() -> None:
    """Remove every synchronised datablock; keep one empty scene that the room's scene will take over.

    Meant for joining a room that already has content.
    """
    keep = bpy.context.window.scene if bpy.context.window is not None else bpy.data.scenes[0]
    for kind, attr in ids.DATA_COLLECTIONS.items():
        coll = getattr(bpy.data, attr)
        for id_data in list(coll):
            if not ids.is_synced(id_data):
                continue
            if kind == "scene" and id_data == keep:
                continue
            coll.remove(id_data)
    if ids.UUID_PROP in keep:
        del keep[ids.UUID_PROP]
    keep[ADOPT_PROP] = True
