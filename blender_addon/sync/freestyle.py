"""A scene's Freestyle settings per view layer, parts of the scene kind: ``scene/<u>/freestyle/<view layer>``
(``{use_freestyle, props}``: the view layer's switch and its edge detection settings) and
``scene/<u>/lineset/<view layer>/<line set>`` (``{props}``: the line set's selection settings, its
``collection`` and ``linestyle`` as uuids), one key per line set, so two artists editing two line sets keep
both; ``scene/<u>/linesetorder/<view layer>``: the line sets' names in the order they are drawn, like a
modifier stack's order. The line style itself is a datablock of its own (kinds/linestyles.py).

Blender's API moves no line set (only an operator on the window's view layer does): putting them in order
removes the line sets from the first misplaced one on and makes them again with the settings they had.

View layers travel as keys of their own (view_layers.py): a key naming a view layer that has not arrived waits
for it.
"""

from __future__ import annotations

import bpy

from . import ids, order, rna, view_layers
from .context import ApplyContext, ReadContext
from .items import Items


def read(scene: bpy.types.Scene, ctx: ReadContext) -> dict[str, dict]:
    """Items of the ``freestyle`` and ``lineset`` parts."""
    layers: dict[tuple[str, ...], object] = {}
    sets: dict[tuple[str, ...], object] = {}
    order: dict[tuple[str, ...], object] = {}
    for layer in view_layers.layers(scene):
        settings = layer.freestyle_settings
        layers[(layer.name,)] = {"use_freestyle": layer.use_freestyle, "props": ctx.props(settings)}
        for lineset in settings.linesets:
            sets[(layer.name, lineset.name)] = {"props": ctx.props(lineset)}
        order[(layer.name,)] = [lineset.name for lineset in settings.linesets]
    return {"freestyle": layers, "lineset": sets, "linesetorder": order}


def describe(scene: bpy.types.Scene, ctx: ReadContext) -> dict[str, object]:
    return {
        layer.name: [
            layer.use_freestyle,
            ctx.props(layer.freestyle_settings),
            [[lineset.name, ctx.props(lineset)] for lineset in layer.freestyle_settings.linesets],
        ]
        for layer in view_layers.layers(scene)
    }


def _remove(linesets, lineset) -> None:
    # Blender takes a user from a line set's collection when it removes the line set but gives it none when
    # the collection is set through its API: a collection could end with no user (and be lost on saving).
    lineset.collection = None
    linesets.remove(lineset)


def clear(scene: bpy.types.Scene) -> None:
    """Remove a taken-over scene's line sets: the room's arrive as keys."""
    for layer in scene.view_layers:
        linesets = layer.freestyle_settings.linesets
        for lineset in list(linesets):
            _remove(linesets, lineset)


def _layer(scene: bpy.types.Scene, name: str, ctx: ApplyContext):
    layer = view_layers.find(scene, name)
    if layer is None:
        ctx.wait_for("vlayer", ids.get_uuid(scene))  # applied again once a view layer of the scene has been
    return layer


def apply_layer(scene: bpy.types.Scene, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    if doc is None:
        return scene  # goes away with its view layer or scene
    layer = _layer(scene, item[0], ctx)
    if layer is not None:
        if layer.use_freestyle != doc["use_freestyle"]:
            layer.use_freestyle = doc["use_freestyle"]
        rna.write_props(layer.freestyle_settings, doc["props"], ctx.resolve)
    return scene


def apply_lineset(scene: bpy.types.Scene, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    layer_name, name = item
    layer = view_layers.find(scene, layer_name)
    if doc is None:
        found = layer.freestyle_settings.linesets.get(name) if layer is not None else None
        if found is not None and ctx.deleting:
            _remove(layer.freestyle_settings.linesets, found)
        return scene
    layer = _layer(scene, layer_name, ctx)
    if layer is None:
        return scene
    linesets = layer.freestyle_settings.linesets
    lineset = linesets.get(name) or _new(linesets, name)
    # A line set cannot point at no line style: one that has not arrived leaves it as it is until it does.
    rna.write_props(lineset, doc["props"], ctx.resolve, first=("linestyle",))
    return scene


def _new(linesets, name: str):
    lineset = linesets.new(name)
    lineset.name = name
    made = lineset.linestyle  # Blender makes a line style for every new line set: the room names its own
    if made is not None and ids.peek_uuid(made) is None and made.users <= 1:
        bpy.data.linestyles.remove(made)  # the line set then points at none
    return lineset


def _copy(lineset) -> dict[str, object]:
    """A line set's settings, to make it again elsewhere in the list (pointers kept as datablocks)."""
    values = {}
    for prop in lineset.bl_rna.properties:
        ident = prop.identifier
        if prop.is_readonly or prop.type == "COLLECTION" or ident in rna.COMMON_SKIP:
            continue
        value = getattr(lineset, ident)
        values[ident] = value if prop.type == "POINTER" else rna.plain(value)
    return values


def apply_order(scene: bpy.types.Scene, item: tuple[str, ...], doc: list | None, ctx: ApplyContext):
    """Put a view layer's line sets in the listed order; line sets the list does not name follow, by name.

    A line set made by its own key is appended; the order key that comes with it moves it.
    """
    layer = view_layers.find(scene, item[0]) if doc is not None else None
    if layer is None:
        if doc is not None:
            ctx.wait_for("vlayer", ids.get_uuid(scene))
        return scene  # an order key goes away with its view layer
    linesets = layer.freestyle_settings.linesets
    stack = order.plan([s.name for s in linesets], doc)
    if stack.missing:
        ctx.wait_for("lineset", ids.get_uuid(scene))  # a listed line set has not arrived: again once it has
    first = stack.first
    if first is None:
        return scene
    moved = {s.name: _copy(s) for s in list(linesets)[first:]}
    for lineset in list(linesets)[first:]:
        _remove(linesets, lineset)
    for name in stack.wanted[first:]:
        lineset = _new(linesets, name)
        for ident, value in moved[name].items():
            try:
                if getattr(lineset, ident) != value:
                    setattr(lineset, ident, value)
            except (AttributeError, TypeError, ValueError):
                continue
    return scene


PARTS = {
    "freestyle": Items(apply_layer),
    "lineset": Items(apply_lineset, depth=2),
    "linesetorder": Items(apply_order),
}
