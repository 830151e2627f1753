"""A scene's view layers, parts of the scene kind.

- ``scene/<u>/vlayer/<view layer>``: ``{props, aovs, lightgroups}``: whether it renders, samples, passes,
  the material and world overrides as uuids, EEVEE's and Cycles' passes; its AOVs as ``[name, type]`` and
  its light groups by name;
- ``scene/<u>/vlayerorder``: the names in Blender's order;
- ``scene/<u>/laycoll/<view layer>/<collection uuid>``: ``[exclude, holdout, indirect_only, hide_viewport]``
  of that collection in that view layer, one key per collection, so collections added or removed elsewhere
  merge. Every collection of the view layer has one, off or not: Blender gives a collection new in a view
  layer its parent's flags, which only a key of its own sets back.

View layers are named by name, as the Freestyle keys name them: a rename is the old name's keys deleted and
the new name's made.

Which view layer an artist looks through (the window's) is theirs and does not travel.

Blender keeps one view layer per scene at least: a scene made or taken over for the room keeps one layer
marked with :data:`ADOPT` (read by nobody), which the first of the room's view layers to arrive takes over
(renamed); deleting a scene's last view layer marks it so instead.
"""

from __future__ import annotations

import bpy

from . import ids, moves, rna
from .context import ApplyContext, ReadContext
from .items import Items

ADOPT = "blendsync_adopt"  # on a view layer the room's next view layer takes over
# Read elsewhere (use_freestyle: freestyle.py) or each artist's own (the active AOV, light group).
SKIP = ("use_freestyle", "active_aov_index", "active_lightgroup_index")
NESTED = ("eevee", "cycles")
FLAGS = ("exclude", "holdout", "indirect_only", "hide_viewport")


def layers(scene: bpy.types.Scene) -> list:
    """The scene's view layers that travel (not one waiting to be taken over)."""
    return [layer for layer in scene.view_layers if ADOPT not in layer]


def _layer_collections(root) -> list:
    out, stack = [], list(root.children)
    while stack:
        lc = stack.pop()
        out.append(lc)
        stack.extend(lc.children)
    return out


def _flags(layer, ctx: ReadContext) -> dict[tuple[str, ...], object]:
    out: dict[tuple[str, ...], object] = {}
    for lc in _layer_collections(layer.layer_collection):
        flags = [getattr(lc, f) for f in FLAGS]
        uuid = ctx.uuid(lc.collection)
        if uuid is not None:  # a collection linked from a library has no key (its flags stay each artist's)
            out.setdefault((layer.name, uuid), flags)
    return out


def _value(layer, ctx: ReadContext) -> dict[str, object]:
    return {
        "props": ctx.props(layer, skip=SKIP, nested=NESTED),
        "aovs": [[aov.name, aov.type] for aov in layer.aovs],
        "lightgroups": [group.name for group in layer.lightgroups],
    }


def read(scene: bpy.types.Scene, ctx: ReadContext) -> dict[str, object]:
    """Items of the ``vlayer`` and ``laycoll`` parts, and the ``vlayerorder`` part."""
    values: dict[tuple[str, ...], object] = {}
    flags: dict[tuple[str, ...], object] = {}
    moves.note_names(scene, "view_layers", {layer.as_pointer(): layer.name for layer in layers(scene)})
    for layer in layers(scene):
        values[(layer.name,)] = _value(layer, ctx)
        flags.update(_flags(layer, ctx))
    return {"vlayer": values, "vlayerorder": [layer.name for layer in layers(scene)], "laycoll": flags}


def describe(scene: bpy.types.Scene, ctx: ReadContext) -> list:
    return [
        [layer.name, _value(layer, ctx), sorted([list(k), v] for k, v in _flags(layer, ctx).items())]
        for layer in layers(scene)
    ]


def prepare(scene: bpy.types.Scene) -> None:
    """A scene made or taken over for the room: one view layer, marked to be taken over by the room's."""
    for layer in list(scene.view_layers)[1:]:
        scene.view_layers.remove(layer)
    scene.view_layers[0][ADOPT] = True


def find(scene: bpy.types.Scene, name: str):
    """The view layer of this name that travels, or None."""
    layer = scene.view_layers.get(name)
    return layer if layer is not None and ADOPT not in layer else None


def _make(scene: bpy.types.Scene, name: str):
    layer = scene.view_layers.get(name)
    if layer is None:
        layer = next((vl for vl in scene.view_layers if ADOPT in vl), None)
        if layer is None:
            return scene.view_layers.new(name)
        layer.name = name
    if ADOPT in layer:
        del layer[ADOPT]
        _forget(layer)
    return layer


def _forget(layer) -> None:
    """A view layer taken over holds what the room's sends as keys: no line set, no collection flag."""
    linesets = layer.freestyle_settings.linesets
    for lineset in list(linesets):
        lineset.collection = None  # as freestyle._remove: Blender would take a user it never gave
        linesets.remove(lineset)
    for lc in _layer_collections(layer.layer_collection):
        for flag in FLAGS:
            if getattr(lc, flag):
                setattr(lc, flag, False)


def _new_aov(aovs, item) -> None:
    aov = aovs.add()
    aov.name, aov.type = item[0], item[1]


def apply_layer(scene: bpy.types.Scene, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    (name,) = item
    if doc is None:
        layer = find(scene, name)
        if layer is None or not ctx.deleting:
            return scene
        if len(scene.view_layers) <= 1:
            layer[ADOPT] = True  # Blender keeps one: the next view layer to arrive takes it over
        else:
            scene.view_layers.remove(layer)
        return scene
    layer = _make(scene, name)
    rna.write_props(layer, doc["props"], ctx.resolve)
    if [[aov.name, aov.type] for aov in layer.aovs] != doc["aovs"]:
        while len(layer.aovs):
            layer.aovs.remove(layer.aovs[0])
        for aov_name, aov_type in doc["aovs"]:
            _new_aov(layer.aovs, (aov_name, aov_type))
    if [group.name for group in layer.lightgroups] != doc["lightgroups"]:
        while len(layer.lightgroups):
            layer.lightgroups.remove(layer.lightgroups[0])
        for group in doc["lightgroups"]:
            layer.lightgroups.add(name=group)
    return scene


def apply_order(scene: bpy.types.Scene, doc: list | None, ctx: ApplyContext):
    """Put the view layers in the listed order; ones the list does not name follow, by name."""
    if not isinstance(doc, list):
        return scene
    present = [layer.name for layer in layers(scene)]
    listed = [name for name in doc if name in present]
    if len(listed) < len(doc):
        ctx.wait_for("vlayer", ids.get_uuid(scene))  # a listed view layer has not arrived: again once it has
    wanted = listed + sorted(name for name in present if name not in set(listed))
    for index, name in enumerate(wanted):
        current = [layer.name for layer in scene.view_layers].index(name)
        if current != index:
            try:
                scene.view_layers.move(current, index)
            except (AttributeError, TypeError, ValueError, RuntimeError) as exc:
                ctx.report(f"view layers of {scene.name!r} cannot be put in order here: {exc}")
                return scene
    return scene


def apply_flags(scene: bpy.types.Scene, item: tuple[str, ...], doc: list | None, ctx: ApplyContext):
    """A collection's flags in a view layer. A collection not in the view layer yet (its link into the scene
    has not arrived) is tried again at the end of every step; a deleted key left with its collection."""
    if doc is None:
        return scene
    name, coll_uuid = item
    layer = find(scene, name)
    if layer is None:
        ctx.wait_for("vlayer", ids.get_uuid(scene))
        return scene
    coll = ctx.resolve(coll_uuid)
    if coll is None:
        return scene
    wanted = [bool(flag) for flag in doc]
    found = [lc for lc in _layer_collections(layer.layer_collection) if lc.collection == coll]
    if not found:
        ctx.retry_after_step(ids.get_uuid(scene))
    for lc in found:
        # Blender excludes (and brings back) a collection's children with it: each child's own key says
        # what it holds, which an order of keys other than the sender's must not change.
        below = [(child, child.exclude) for child in _layer_collections(lc)]
        for flag, value in zip(FLAGS, wanted, strict=False):
            if getattr(lc, flag) != value:
                setattr(lc, flag, value)
        for child, exclude in below:
            if child.exclude != exclude:
                child.exclude = exclude
    return scene


PARTS = {
    "vlayer": Items(apply_layer),
    "vlayerorder": apply_order,
    "laycoll": Items(apply_flags, depth=2),
}
