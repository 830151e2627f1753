"""Shader node groups (kind ``ngroup``): interface sockets and panels, and the group's node tree.

Only shader node trees are synchronised; pointers to any node tree are
declared as ``NodeTree``, so that is the type read as a link.
"""

from __future__ import annotations

import bpy

from .. import rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from ..node_trees import apply_node_tree, describe_node_tree, read_node_tree
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
        "meta": {"name": tree.name, "interface": read_interface(tree, ctx)},
        "nodes": read_node_tree(tree, ctx),
    }


def describe(tree: bpy.types.NodeTree, ctx: ReadContext) -> dict:
    return {"name": tree.name, "interface": read_interface(tree, ctx), "tree": describe_node_tree(tree, ctx)}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.node_groups.new(doc["name"], "ShaderNodeTree")


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
    rename(tree, doc["name"])
    iface = tree.interface
    wanted = doc["interface"]
    if _current_shape(tree) != _interface_shape(wanted):
        _rebuild_interface(iface, wanted)
    for item, d in zip(iface.items_tree, wanted, strict=False):
        rna.write_props(item, d["props"], ctx.resolve, first=("subtype",))
    return tree


def apply_nodes(tree: bpy.types.NodeTree, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    apply_node_tree(tree, doc, ctx)
    return tree


KIND = Kind(
    name="ngroup",
    collection="node_groups",
    rna_type="ShaderNodeTree",  # shader node groups (embedded material/world trees are skipped)
    pointer_type="NodeTree",
    parts={"meta": apply_meta, "nodes": apply_nodes},
    create=create,
    serialise=serialise,
    describe=describe,
)
