"""Shader node trees, shared by the kinds that hold one (materials, worlds, node groups).

Read, described and rebuilt here; each kind decides where its tree lives.
"""

from __future__ import annotations

import bpy

from . import rna
from .arrays import floats
from .context import ApplyContext, ReadContext

NODE_SKIP = (
    "type",
    "location",
    "location_absolute",
    "width",
    "height",
    "dimensions",
    "label",
    "parent",
    "show_options",
    "show_preview",
    "hide",
    "mute",
    "show_texture",
    "use_custom_color",
    "color",
    "color_tag",
    "warning_propagation",
    "inputs",
    "outputs",
    "internal_links",
    "is_active_output",
)


# Nodes whose sockets come from a node group's interface: their identifiers
# (``Socket_<n>``) are made by a counter and differ between replicas, so these
# sockets are named by position instead (``#<index>``).
GROUP_NODES = frozenset({"NodeGroupInput", "NodeGroupOutput", "ShaderNodeGroup"})


def socket_id(node, sock, sockets) -> str:
    """Stable name of a socket within ``sockets`` (a node's inputs or outputs)."""
    if node.bl_idname in GROUP_NODES:
        ptr = sock.as_pointer()
        for i, other in enumerate(sockets):
            if other.as_pointer() == ptr:
                return f"#{i}"
    return sock.identifier


# ---------------------------------------------------------------- read


def _socket_values(node, sockets, ctx: ReadContext) -> list[list[object]]:
    out = []
    for sock in sockets:
        if not hasattr(sock, "default_value"):
            continue
        value = sock.default_value
        value = ctx.ref(value) if isinstance(value, bpy.types.ID) else rna.plain(value)
        out.append([socket_id(node, sock, sockets), value])
    return out


def _color_ramp(ramp) -> dict[str, object]:
    return {
        "color_mode": ramp.color_mode,
        "interpolation": ramp.interpolation,
        "hue_interpolation": ramp.hue_interpolation,
        "elements": [[float(e.position), floats(e.color)] for e in ramp.elements],
    }


def read_node_tree(tree: bpy.types.NodeTree | None, ctx: ReadContext) -> dict[str, object] | None:
    """The document of a node tree: nodes sorted by name, links sorted."""
    if tree is None:
        return None
    nodes = []
    for node in tree.nodes:
        doc = {
            "name": node.name,
            "type": node.bl_idname,
            "label": node.label,
            "parent": node.parent.name if node.parent is not None else None,
            "location": floats(node.location),
            "width": float(node.width),
            "hide": node.hide,
            "mute": node.mute,
            "props": ctx.props(node, skip=NODE_SKIP),
            "inputs": _socket_values(node, node.inputs, ctx),
            "outputs": _socket_values(node, node.outputs, ctx),
        }
        ramp = getattr(node, "color_ramp", None)
        if ramp is not None:
            doc["color_ramp"] = _color_ramp(ramp)
        nodes.append(doc)
    nodes.sort(key=lambda n: n["name"])
    links = sorted(
        [
            link.from_node.name,
            socket_id(link.from_node, link.from_socket, link.from_node.outputs),
            link.to_node.name,
            socket_id(link.to_node, link.to_socket, link.to_node.inputs),
            link.is_muted,
        ]
        for link in tree.links
    )
    return {"nodes": nodes, "links": links}


# ---------------------------------------------------------------- describe


def describe_node_tree(tree: bpy.types.NodeTree | None, ctx: ReadContext) -> dict | None:
    """The canonical description of a node tree (for scene_hash)."""
    if tree is None:
        return None
    nodes = {}
    for node in tree.nodes:
        nodes[node.name] = {
            "type": node.bl_idname,
            "parent": node.parent.name if node.parent else None,
            "location": floats(node.location),
            "props": ctx.props(node, skip=NODE_SKIP),
            "inputs": [
                [
                    socket_id(node, s, node.inputs),
                    ctx.ref(s.default_value)
                    if isinstance(s.default_value, bpy.types.ID)
                    else rna.plain(s.default_value),
                ]
                for s in node.inputs
                if hasattr(s, "default_value")
            ],
            "outputs": [
                [socket_id(node, s, node.outputs), rna.plain(s.default_value)]
                for s in node.outputs
                if hasattr(s, "default_value") and not isinstance(s.default_value, bpy.types.ID)
            ],
            "ramp": [[e.position, floats(e.color)] for e in node.color_ramp.elements]
            if getattr(node, "color_ramp", None) is not None
            else None,
        }
    links = sorted(
        [
            lk.from_node.name,
            socket_id(lk.from_node, lk.from_socket, lk.from_node.outputs),
            lk.to_node.name,
            socket_id(lk.to_node, lk.to_socket, lk.to_node.inputs),
        ]
        for lk in tree.links
    )
    return {"nodes": nodes, "links": links}


# ---------------------------------------------------------------- apply


def _find_socket(sockets, identifier: str):
    if identifier.startswith("#"):  # a socket of a group node, by position (see socket_id)
        index = int(identifier[1:])
        return sockets[index] if index < len(sockets) else None
    return next((s for s in sockets if s.identifier == identifier), None)


def _is_id_socket(sock) -> bool:
    return sock.bl_idname in {
        "NodeSocketObject",
        "NodeSocketImage",
        "NodeSocketMaterial",
        "NodeSocketCollection",
    }


def _set_socket_values(sockets, values: list, ctx: ApplyContext) -> None:
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


def apply_node_tree(tree: bpy.types.NodeTree | None, doc: dict | None, ctx: ApplyContext) -> None:
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
