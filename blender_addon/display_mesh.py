"""Display meshes for the browser viewer: what Blender shows of each object, published while someone watches.

The room holds base data (a mesh before its modifiers, a geometry nodes tree); a browser cannot evaluate
it. While the room has viewers (members of kind ``viewer``), each add-on publishes, for the objects whose
geometry changed here, the **evaluated** mesh (modifiers and geometry nodes applied), triangulated, with
corner normals, in the object's own space, under ``view/<object uuid>/mesh``; and a summary of the
materials those objects use under ``view/<material uuid>/material``, with the image of a simple material's
base colour (display_images.py; docs/values.md gives the encodings). Their large byte strings travel as
chunks (sync/chunks.py), which a viewer fetches as blobs its room references.

- **Content-addressed**: each mesh carries the SHA-256 of its content; a mesh whose hash the room already
  holds (published by anyone) is not sent again, so two artists seeing the same change publish it once in
  the usual case, and a transform drag (object space does not change) publishes nothing.
- **Throttled and debounced**: one pass at most every ``PASS_INTERVAL`` seconds, an object only once its
  geometry has been still for ``QUIET_SECONDS`` (so editing or dragging does not evaluate on every pump),
  and at most ``PASS_BUDGET`` seconds of evaluation per pass.
- **No viewers, no cost**: nothing is recorded or evaluated; when the first viewer arrives, every object
  is published once (as far as the room does not already hold it).

Blender clients ignore ``view/`` keys (they are no datablock kind of ``sync/``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Any

import bpy

from .display_images import ImageCache, base_color_image
from .paint_watch import images_of
from .sync.codec import encode_value
from .sync.ids import peek_uuid

PASS_INTERVAL = 0.25
QUIET_SECONDS = 0.3
PASS_BUDGET = 0.01
DRAWABLE = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"}
FORMAT = 1
PREFIX = "view/"
NODES_ALWAYS = bpy.app.version >= (5, 0, 0)  # a material always uses its nodes (use_nodes is deprecated)


def mesh_key(uuid: str) -> str:
    return f"{PREFIX}{uuid}/mesh"


def material_key(uuid: str) -> str:
    return f"{PREFIX}{uuid}/material"


class DisplayMeshes:
    def __init__(self) -> None:
        self.stats = {"published": 0, "evaluated": 0}
        self.images = ImageCache()
        self._reset(None)

    def _reset(self, room: str | None) -> None:
        self.room = room
        self.viewers = 0
        self.in_room: dict[str, bytes] = {}  # view key -> its hash (meshes) or encoded value (materials)
        self.changed: dict[str, float] = {}  # object uuid -> when its geometry last changed here
        # material uuid -> when it (or its image) last changed here: summarised again once still for
        # QUIET_SECONDS, so painting an image or dragging a colour does not encode it on every pass
        self.materials: dict[str, float] = {}
        self.next_pass = 0.0
        self.images.clear()

    # ---- what happens in the scene and the room ------------------------------------------------------

    def note_depsgraph(self, depsgraph: Any) -> None:
        if not self.viewers:
            return
        now = time.monotonic()
        for update in depsgraph.updates:
            data = update.id
            if isinstance(data, bpy.types.Object) and update.is_updated_geometry:
                uuid = peek_uuid(data.original)
                if uuid is not None:
                    self.changed[uuid] = now
            elif isinstance(data, bpy.types.Material):
                uuid = peek_uuid(data.original)
                if uuid is not None:
                    self.materials[uuid] = now
            elif isinstance(data, bpy.types.Image):
                self.note_image(data.original, now)  # reloaded, repacked...

    def note_image(self, image: bpy.types.Image, now: float) -> None:
        """An image changed here: its display image is encoded again, for the materials using it."""
        self.images.forget(image)
        self.materials.update(dict.fromkeys(_users_of(image), now))

    def note_sent(self, keys: Iterable[str]) -> None:
        """Keys this artist's edits changed: painted pixels are not reported by Blender, only found by the
        sync loop (paint_watch.py), which sends them as the image's ``data``."""
        if not self.viewers:
            return
        now = time.monotonic()
        for image in images_of(keys):
            self.note_image(image, now)

    def note_room(self, ops: list) -> None:
        """Values of ``view/`` keys arriving from the room (snapshot or others' writes)."""
        for op in ops:
            key, value = op[0], op[1]
            if not key.startswith(PREFIX):
                continue
            if value is None:
                self.in_room.pop(key, None)
            elif key.endswith("/mesh"):
                self.in_room[key] = _hash_of(value)
            else:
                self.in_room[key] = value

    # ---- the pass ------------------------------------------------------------------------------------

    def pump(self, session: Any) -> None:
        if session.room != self.room:
            self._reset(session.room)  # what the old room held says nothing of the new one
        viewers = sum(1 for user in session.users.values() if user.get("kind") == "viewer")
        arrived = viewers and not self.viewers
        self.viewers = viewers
        if not viewers or not session.live or session.busy:
            return
        now = time.monotonic()
        if arrived:
            self.images.clear()  # images changed while nobody watched were not noted
            for ob in bpy.data.objects:
                uuid = peek_uuid(ob)
                if uuid is not None and ob.type in DRAWABLE:
                    self.changed[uuid] = now - QUIET_SECONDS  # ready at the next pass
        if now < self.next_pass or not (self.changed or self.materials):
            return
        self.next_pass = now + PASS_INTERVAL
        ops = self._pass(now)
        if ops:
            self.stats["published"] += len(ops)
            session._send_ops(session.chunks.with_refs(ops))  # large byte strings go as chunks

    def _pass(self, now: float) -> list[list[Any]]:
        ready = [uuid for uuid, at in self.changed.items() if now - at >= QUIET_SECONDS]
        # (a material or its image may change alone: its summary goes without any mesh)
        objects = {peek_uuid(ob): ob for ob in bpy.data.objects} if ready else {}
        depsgraph = bpy.context.evaluated_depsgraph_get() if ready else None
        ops: list[list[Any]] = []
        deadline = time.monotonic() + PASS_BUDGET
        for uuid in ready:
            if time.monotonic() > deadline:
                break  # the rest waits for the next pass
            del self.changed[uuid]
            key = mesh_key(uuid)
            ob = objects.get(uuid)
            doc = evaluated_mesh(ob, depsgraph) if ob is not None and ob.type in DRAWABLE else None
            self.stats["evaluated"] += 1
            if doc is None:
                if key in self.in_room:
                    ops.append(["delete", key])
                    del self.in_room[key]
                continue
            digest = doc["hash"].encode()
            if self.in_room.get(key) != digest:
                ops.append(["set", key, encode_value(doc)])
                self.in_room[key] = digest
            for slot in ob.material_slots:
                material_uuid = peek_uuid(slot.material)
                if material_uuid is not None and material_key(material_uuid) not in self.in_room:
                    self.materials[material_uuid] = now - QUIET_SECONDS  # ready now
        still = sorted(uuid for uuid, at in self.materials.items() if now - at >= QUIET_SECONDS)
        if still:
            by_uuid = {peek_uuid(m): m for m in bpy.data.materials}
            for uuid in still:
                del self.materials[uuid]
                material = by_uuid.get(uuid)
                if material is None:
                    continue
                value = encode_value(material_summary(material, self.images))
                if self.in_room.get(material_key(uuid)) != value:
                    ops.append(["set", material_key(uuid), value])
                    self.in_room[material_key(uuid)] = value
        return ops


def _users_of(image: bpy.types.Image) -> set[str]:
    """The uuids of the materials whose nodes use an image."""
    users = set()
    for material in bpy.data.materials:
        tree = material.node_tree
        if tree is not None and any(getattr(n, "image", None) == image for n in tree.nodes):
            uuid = peek_uuid(material)
            if uuid is not None:
                users.add(uuid)
    return users


def _hash_of(value: bytes) -> bytes:
    from .sync.codec import decode_value

    try:
        doc = decode_value(value)
    except Exception:
        return b""
    found = doc.get("hash") if isinstance(doc, dict) else None
    return found.encode() if isinstance(found, str) else b""


def evaluated_mesh(ob: bpy.types.Object, depsgraph: Any) -> dict[str, Any] | None:
    """The object's evaluated geometry as a display mesh (docs/values.md), or None when it has none."""
    import numpy as np  # shipped with Blender

    evaluated = ob.evaluated_get(depsgraph)
    try:
        mesh = evaluated.to_mesh()
    except RuntimeError:
        return None
    try:
        if mesh is None:
            return None
        mesh.calc_loop_triangles()
        triangles = len(mesh.loop_triangles)
        if not triangles:
            return None
        loops = np.empty(triangles * 3, np.int32)
        mesh.loop_triangles.foreach_get("loops", loops)
        materials = np.empty(triangles, np.int32)
        mesh.loop_triangles.foreach_get("material_index", materials)
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        corner_verts = np.empty(len(mesh.loops), np.int32)
        mesh.loops.foreach_get("vertex_index", corner_verts)
        normals = np.empty(len(mesh.loops) * 3, np.float32)
        mesh.corner_normals.foreach_get("vector", normals)
        uv_layer = next((layer for layer in mesh.uv_layers if layer.active_render), None)
        uvs = None
        if uv_layer is not None:
            uvs = np.empty(len(mesh.loops) * 2, np.float32)
            uv_layer.uv.foreach_get("vector", uvs)
    finally:
        evaluated.to_mesh_clear()
    # Triangles by material slot; one vertex per distinct (vertex, corner normal): sharp edges stay sharp.
    order = np.argsort(materials, kind="stable")
    corners = loops.reshape(-1, 3)[order].ravel()
    vertex_bytes = corner_verts[corners].astype("<i4").view(np.uint8).reshape(-1, 4)
    normal_bytes = normals.reshape(-1, 3)[corners].astype("<f4").view(np.uint8).reshape(-1, 12)
    parts = [vertex_bytes, normal_bytes]
    if uvs is not None:  # a vertex is split along UV seams too
        parts.append(uvs.reshape(-1, 2)[corners].astype("<f4").view(np.uint8).reshape(-1, 8))
    rows = np.concatenate(parts, axis=1)
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    positions = co.reshape(-1, 3)[corner_verts[corners[first]]].astype("<f4")
    vertex_normals = normals.reshape(-1, 3)[corners[first]].astype("<f4")
    indices = inverse.reshape(-1).astype("<u4")
    slots = materials[order]
    starts = np.flatnonzero(np.diff(slots, prepend=slots[0] - 1))
    ends = np.append(starts[1:], len(slots))
    groups = [[int(s) * 3, int(e - s) * 3, int(slots[s])] for s, e in zip(starts, ends, strict=True)]
    content = [positions.tobytes(), vertex_normals.tobytes(), indices.tobytes(), repr(groups).encode()]
    if uvs is not None:
        content.append(uvs.reshape(-1, 2)[corners[first]].astype("<f4").tobytes())
    digest = hashlib.sha256()
    for part in content:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    doc = {
        "format": FORMAT,
        "hash": digest.hexdigest(),
        "positions": content[0],
        "normals": content[1],
        "indices": content[2],
        "groups": groups,
    }
    if uvs is not None:
        doc["uvs"] = content[4]
    return doc


def material_summary(material: bpy.types.Material, images: ImageCache | None = None) -> dict[str, Any]:
    """Base colour (and the image feeding it, when simple), metallic, roughness and emission (times its
    strength) from the first Principled BSDF, else the material's viewport settings (docs/values.md,
    "Material summary")."""
    summary = {
        "base_color": [float(c) for c in material.diffuse_color[:3]],
        "metallic": float(material.metallic),
        "roughness": float(material.roughness),
        "emission": [0.0, 0.0, 0.0],
    }
    tree = material.node_tree if NODES_ALWAYS or material.use_nodes else None
    nodes = [n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"] if tree is not None else []
    if nodes:
        inputs = nodes[0].inputs
        summary["base_color"] = [float(c) for c in inputs["Base Color"].default_value[:3]]
        summary["metallic"] = float(inputs["Metallic"].default_value)
        summary["roughness"] = float(inputs["Roughness"].default_value)
        strength = float(inputs["Emission Strength"].default_value)
        summary["emission"] = [float(c) * strength for c in inputs["Emission Color"].default_value[:3]]
        picture = base_color_image(nodes[0], images if images is not None else ImageCache())
        if picture is not None:
            summary["base_color_image"] = picture
    return summary
