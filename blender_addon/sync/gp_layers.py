"""Part of the grease pencil kind kept apart: its layer tree (layer groups) and each layer's masks, in the
data's ``meta`` (kinds/grease_pencils.py).

Groups: the meta carries the groups' settings and the layer tree while groups exist; a receiver removes
what is gone, makes what is new, moves each node under its group and orders each group's nodes.

Masks: a layer's mask layers, in order, each ``[name, invert, hide]``, while it has any. Blender's API adds
and removes none (``mask_layers`` has no ``new``): its Add Mask and Remove Mask operators do, on the
active layer of the object's data. A receiver whose masks differ removes them all and adds them again,
with the layer made active for the calls and the artist's active layer put back.
"""

from __future__ import annotations

import itertools

import bpy

from . import ids
from .context import ApplyContext, ReadContext

# A layer tree: its nodes in order, bottom first; a layer as its name, a group as [name, its nodes]. Names
# are unique across layers and groups (Blender's rule), so a name says which node it is.
Tree = list  # list[str | list[str | Tree]]


def layer_tree(gp: bpy.types.GreasePencil) -> Tree:
    """The nodes under the root group, in order (walked through each node's next sibling)."""
    children: dict[str, list] = {}  # parent group name ("" for the root) -> its nodes, in Blender's order
    for node in itertools.chain(gp.layer_groups, gp.layers):
        if node.prev_node is None:
            siblings, here = [], node
            while here is not None:
                siblings.append(here)
                here = here.next_node
            parent = node.parent_group
            children[parent.name if parent is not None else ""] = siblings

    def nodes(parent: str) -> Tree:
        return [
            [n.name, nodes(n.name)] if isinstance(n, bpy.types.GreasePencilLayerGroup) else n.name
            for n in children.get(parent, ())
        ]

    return nodes("")


def structure(gp: bpy.types.GreasePencil, ctx: ReadContext) -> dict[str, object]:
    """The layer groups' settings and the layer tree, only when there are groups (a flat list of layers is
    the layers' order)."""
    if not len(gp.layer_groups):
        return {}
    return {"groups": {g.name: ctx.props(g) for g in gp.layer_groups}, "tree": layer_tree(gp)}


def arrange(gp: bpy.types.GreasePencil, tree: Tree, groups: dict, names: set[str]) -> None:
    """Make the layer tree ``tree``: keep the layers (and their frames) and groups that stay, remove the
    others (a group's nodes go to its parent first), make the new ones, then put each node under its group
    and each group's nodes in order."""
    layers, layer_groups = gp.layers, gp.layer_groups
    for layer in [layer for layer in layers if layer.name not in names]:
        layers.remove(layer)
    for name in [group.name for group in layer_groups if group.name not in groups]:
        layer_groups.remove(layer_groups[name], keep_children=True)

    def place(nodes: Tree, parent: bpy.types.GreasePencilLayerGroup | None) -> None:
        for node in nodes:
            if isinstance(node, list):
                name, children = node
                group = layer_groups.get(name)
                if group is None:
                    group = layer_groups.new(name, parent_group=parent)
                elif group.parent_group != parent:
                    layer_groups.move_to_layer_group(group, parent)
                place(children, group)
            else:
                layer = layers.get(node)
                if layer is None:
                    layer = layers.new(node, layer_group=parent)
                elif layer.parent_group != parent:
                    layers.move_to_layer_group(layer, parent)
        for node in nodes:  # the last one moved ends on top
            if isinstance(node, list):
                layer_groups.move_top(layer_groups[node[0]])
            else:
                layers.move_top(layers[node])

    place(tree, None)


def masks(layer) -> dict[str, list]:
    """``{"masks": [[name, invert, hide], ...]}`` while the layer has masks, else nothing."""
    found = [[mask.name, mask.invert, mask.hide] for mask in layer.mask_layers]
    return {"masks": found} if found else {}


def apply_masks(gp: bpy.types.GreasePencil, layer, wanted: object, ctx: ApplyContext) -> None:
    if not isinstance(wanted, list) or not all(
        isinstance(m, list) and len(m) == 3 and isinstance(m[0], str) for m in wanted
    ):
        raise ValueError("a layer's masks are a list of [name, invert, hide]")
    if masks(layer).get("masks", []) == wanted:
        return
    owner = next(iter(ctx.users_of(gp)), None)
    if owner is None:  # the operators act on an object's data: tried again once an object uses it
        ctx.retry_after_step(ids.get_uuid(gp))
        return
    layers = gp.layers
    active = layers.active
    layers.active = layer
    try:
        with bpy.context.temp_override(object=owner, active_object=owner):
            for _ in range(len(layer.mask_layers)):
                bpy.ops.grease_pencil.layer_mask_remove()
            for name, invert, hide in wanted:
                if name != layer.name and layers.get(name) is not None and name not in layer.mask_layers:
                    bpy.ops.grease_pencil.layer_mask_add(name=name)
                    mask = layer.mask_layers[len(layer.mask_layers) - 1]
                    mask.invert, mask.hide = bool(invert), bool(hide)
    finally:
        layers.active = active
