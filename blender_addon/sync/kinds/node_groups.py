"""Node groups (kind ``ngroup``) of every tree type (shader, geometry, compositor): name, interface
sockets and panels, and the group's node tree (one key per node, socket value and link).

Group nodes in other trees and geometry nodes modifiers point at them and name
their sockets by position: every group's interface is applied before any
group's nodes (``LEADING_PARTS``, keys.py), so nested groups come first.
"""

from __future__ import annotations

import bpy

from .. import rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from ..node_trees import describe_node_tree, read_tree, tree_parts
from .base import Kind

INTERFACE_SKIP = (
    "item_type",
    "parent",
    "position",
    "index",
    "identifier",
    "in_out",
    "socket_type",
    "bl_socket_idname",
    "interface_items",
    "persistent_uid",
)


def read_interface(tree: bpy.types.NodeTree, ctx: ReadContext) -> list[dict[str, object]]:
    """A node group's interface: sockets and panels in ``items_tree`` order, parents by position."""
    items = list(tree.interface.items_tree)
    position = {item.as_pointer(): i for i, item in enumerate(items)}
    out = []
    for item in items:
        parent = item.parent
        doc: dict[str, object] = {
            "item_type": item.item_type,
            "name": item.name,
            "parent": position.get(parent.as_pointer()) if parent is not None else None,
        }
        if item.item_type == "SOCKET":
            doc["in_out"] = item.in_out
            doc["socket_type"] = item.socket_type
        doc["props"] = ctx.props(item, skip=INTERFACE_SKIP)
        out.append(doc)
    return out


def serialise(tree: bpy.types.NodeTree, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"tree_type": tree.bl_idname},
        "name": tree.name,
        "iface": read_interface(tree, ctx),
        **read_tree(tree, ctx),
    }


def describe(tree: bpy.types.NodeTree, ctx: ReadContext) -> dict:
    return {
        "name": tree.name,
        "type": tree.bl_idname,
        "interface": read_interface(tree, ctx),
        "tree": describe_node_tree(tree, ctx),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    # The name is a key of its own (ngroup/<u>/name), applied after this one: made with it if queued.
    return bpy.data.node_groups.new(ctx.new_name(uuid), doc["tree_type"])


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


def signature(item) -> tuple:
    """An interface item as the merges tell items apart (sync/merges.py, ``_interface``): type, name,
    direction, socket type."""
    if item.item_type == "SOCKET":
        return ("SOCKET", item.name, item.in_out, item.socket_type)
    return (item.item_type, item.name, None, None)


def _update_items(iface, items: list[dict]) -> None:
    """Bring an interface to ``items`` in place.

    Items that stay keep their identifiers, and so the links to them, the
    values set on group nodes and the inputs of geometry nodes modifiers.
    """
    pool = list(iface.items_tree)
    matched = []
    for d in items:
        wanted = (d["item_type"], d["name"], d.get("in_out"), d.get("socket_type"))
        same = next((it for it in pool if signature(it) == wanted), None)
        if same is not None:
            pool.remove(same)
        matched.append(same)
    for item in pool:
        iface.remove(item)
    for i, d in enumerate(items):
        if matched[i] is not None:
            continue
        if d["item_type"] == "SOCKET":
            matched[i] = iface.new_socket(d["name"], in_out=d["in_out"], socket_type=d["socket_type"])
        else:
            matched[i] = iface.new_panel(d["name"])
    if not matched:
        return
    root = matched[0].parent
    while root.parent is not None and root.parent.as_pointer() != root.as_pointer():
        root = root.parent
    for _ in range(2):  # the second pass settles moves that Blender counted from an item's old place
        placed: dict[int, int] = {}
        for i, d in enumerate(items):
            parent = matched[d["parent"]] if d["parent"] is not None and d["parent"] < i else root
            position = placed.get(parent.as_pointer(), 0)
            placed[parent.as_pointer()] = position + 1
            if matched[i].parent.as_pointer() != parent.as_pointer() or matched[i].position != position:
                iface.move_to_parent(matched[i], parent, position)


def _current_shape(tree: bpy.types.NodeTree) -> list[tuple]:
    items = list(tree.interface.items_tree)
    position = {item.as_pointer(): i for i, item in enumerate(items)}
    return [
        (
            item.item_type,
            item.name,
            position.get(item.parent.as_pointer()) if item.parent is not None else None,
            item.in_out if item.item_type == "SOCKET" else None,
            item.socket_type if item.item_type == "SOCKET" else None,
        )
        for item in items
    ]


def apply_meta(tree: bpy.types.NodeTree, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if tree.bl_idname != doc["tree_type"]:
        ctx.report(f"node group {tree.name!r} is a {tree.bl_idname}, the room's is a {doc['tree_type']}")
    return tree


def apply_name(tree: bpy.types.NodeTree, doc: str, ctx: ApplyContext) -> bpy.types.ID:
    rename(tree, doc)
    return tree


def apply_interface(tree: bpy.types.NodeTree, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    iface = tree.interface
    wanted = doc
    if _current_shape(tree) != _interface_shape(wanted):
        _update_items(iface, wanted)
        if _current_shape(tree) != _interface_shape(wanted):
            _rebuild_interface(iface, wanted)
    for item, d in zip(iface.items_tree, wanted, strict=False):
        rna.write_props(item, d["props"], ctx.resolve, first=("subtype",))
    return tree


KIND = Kind(
    name="ngroup",
    collection="node_groups",
    rna_type="NodeTree",  # every tree type derives from it (embedded material/world trees are skipped)
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "iface": apply_interface,
        **tree_parts(lambda tree: tree),
    },
    create=create,
    serialise=serialise,
    describe=describe,
)
