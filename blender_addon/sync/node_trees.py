"""Node trees as one key per node, per socket value and per link; shared by every kind that holds a tree.

Materials and worlds hold an embedded shader tree, node groups (shader,
geometry and compositor) are trees themselves; each kind says where its tree
lives and this module reads, describes and applies it.

A node's identity is an id kept in the node's custom property
``node["blendsync_id"]`` (given on first sight; a pasted copy that carries
its original's id gets a fresh one), so a node's key survives a rename and
two artists adding nodes to one tree at the same moment write different
keys.  Keys (items of the owning datablock, ``<kind>/<uuid>/<part>/...``):

- ``node/<node id>``: name, type, label, hide, mute, settings, colour ramp,
  curve mappings (structs.py), the paired zone output;
- ``items/<node id>``: the node's item lists (repeat, capture, menu switch... items), node_items.py;
- ``at/<node id>``: frame parent (node id), location, width;
- ``in/<node id>/<socket>`` and ``out/<node id>/<socket>``: one socket's
  default value;
- ``link/<from node id>/<from socket>/<to node id>/<to socket>``: muted flag;
  a link is a member of the tree's set of links: present or deleted;
- ``treeanim``: the action animating the tree (its nodes' settings and socket values), animation.py.
"""

from __future__ import annotations

from collections.abc import Callable

import bpy

from . import animation, ids, moves, nla, node_items, rna, structs
from .arrays import floats
from .assign import set_components
from .context import ApplyContext, ReadContext
from .items import Items

NODE_ID_PROP = "blendsync_id"

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
# sockets are named by position instead (``#<index>``). So are the sockets of
# nodes with item lists (``Item_<n>``: node_items.py).
GROUP_NODES = frozenset(
    {"NodeGroupInput", "NodeGroupOutput", "ShaderNodeGroup", "GeometryNodeGroup", "CompositorNodeGroup"}
)


def by_position(node) -> bool:
    """Whether ``node``'s sockets are named by position (``#<index>``) rather than by identifier."""
    return node.bl_idname in GROUP_NODES or node_items.has_item_sockets(node)


def socket_id(node, sock, sockets) -> str:
    """Stable name of a socket within ``sockets`` (a node's inputs or outputs)."""
    if by_position(node):
        ptr = sock.as_pointer()
        for i, other in enumerate(sockets):
            if other.as_pointer() == ptr:
                return f"#{i}"
    return sock.identifier


# ---------------------------------------------------------------- identity


def tree_of(id_data: bpy.types.ID | None) -> bpy.types.NodeTree | None:
    """The node tree a datablock is or holds (a node group; a material's, world's... embedded one)."""
    return id_data if isinstance(id_data, bpy.types.NodeTree) else getattr(id_data, "node_tree", None)


def node_id(node) -> str | None:
    value = node.get(NODE_ID_PROP)
    return value if isinstance(value, str) and value else None


def nodes_by_id(tree: bpy.types.NodeTree, assign: bool = True) -> dict[str, bpy.types.Node]:
    """Node id -> node; with ``assign``, nodes without an id (or with a copied one) get a fresh id."""
    out: dict[str, bpy.types.Node] = {}
    for node in tree.nodes:
        nid = node_id(node)
        if nid is None or nid in out:
            if not assign:
                continue
            nid = ids.new_uuid()[:16]
            node[NODE_ID_PROP] = nid
        out[nid] = node
    return out


# ---------------------------------------------------------------- read


def _socket_value(sock, ctx: ReadContext) -> object:
    value = sock.default_value
    if isinstance(value, bpy.types.ID):
        return ctx.ref(value)
    return ctx.masked(sock, "default_value", rna.plain(value))  # animated values: derived.py


def read_tree(tree: bpy.types.NodeTree | None, ctx: ReadContext) -> dict[str, object]:
    """A tree's parts: the items of ``node``, ``items``, ``at``, ``in``, ``out`` and ``link``; ``treeanim``;
    the tree's NLA tracks ``treenla`` and ``treenlaorder``."""
    parts: dict[str, dict] = {"node": {}, "items": {}, "at": {}, "in": {}, "out": {}, "link": {}}
    parts["treeanim"] = animation.read(tree, ctx)
    parts.update(nla.read(tree, ctx, "treenla"))
    if tree is None:
        return parts
    by_id = nodes_by_id(tree)
    id_of = {node.as_pointer(): nid for nid, node in by_id.items()}
    zone_input_of = {  # a zone output -> its input
        paired.as_pointer(): nid
        for nid, node in by_id.items()
        if (paired := getattr(node, "paired_output", None)) is not None
    }
    for nid, node in by_id.items():
        doc = {
            "name": node.name,
            "type": node.bl_idname,
            "label": node.label,
            "hide": node.hide,
            "mute": node.mute,
            "props": ctx.props(node, skip=NODE_SKIP + node_items.active_props(node)),
        }
        ramp = getattr(node, "color_ramp", None)
        if ramp is not None:
            doc["color_ramp"] = structs.read_color_ramp(ramp, ctx)
        held = structs.read(node, ctx, skip=("color_ramp",))
        if held:
            doc["structs"] = held
        paired = getattr(node, "paired_output", None)
        if paired is not None:
            doc["paired_output"] = id_of.get(paired.as_pointer())
        zone_input = zone_input_of.get(node.as_pointer())
        if zone_input is not None:
            doc["zone_input"] = zone_input
        parts["node"][(nid,)] = doc
        if node_items.item_lists(node):
            parts["items"][(nid,)] = node_items.read_items(node, ctx)
        # Where it sits is a key of its own: moving a node and changing its settings at once keeps both.
        parts["at"][(nid,)] = {
            "parent": id_of.get(node.parent.as_pointer()) if node.parent is not None else None,
            "location": floats(node.location),
            "width": float(node.width),
        }
        positional = by_position(node)
        if positional:
            moves.note_node(tree, nid, node)
        for part, sockets in (("in", node.inputs), ("out", node.outputs)):
            for i, sock in enumerate(sockets):
                if hasattr(sock, "default_value"):
                    parts[part][(nid, f"#{i}" if positional else sock.identifier)] = _socket_value(sock, ctx)
    for link in tree.links:
        from_id = id_of.get(link.from_node.as_pointer())
        to_id = id_of.get(link.to_node.as_pointer())
        if from_id is None or to_id is None:
            continue
        item = (
            from_id,
            socket_id(link.from_node, link.from_socket, link.from_node.outputs),
            to_id,
            socket_id(link.to_node, link.to_socket, link.to_node.inputs),
        )
        parts["link"][item] = link.is_muted
    return parts


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
            "items": node_items.read_items(node, ctx),
            "paired": node.paired_output.name if getattr(node, "paired_output", None) else None,
            "structs": structs.read(node, None, skip=("color_ramp",)),
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
    return {"nodes": nodes, "links": links, "anim": animation.describe(tree, ctx), "nla": nla.describe(tree)}


# ---------------------------------------------------------------- apply


def _find_socket(sockets, identifier: str):
    if identifier.startswith("#"):  # a socket of a group node, by position (see socket_id)
        index = int(identifier[1:]) if identifier[1:].isdigit() else -1
        found = sockets[index] if 0 <= index < len(sockets) else None
    else:
        found = next((s for s in sockets if s.identifier == identifier), None)
    # The empty socket at the end of a group's input/output node makes a new interface socket when
    # linked: the interface socket it stands for has not arrived yet.
    return None if found is None or found.bl_idname == "NodeSocketVirtual" else found


def _is_id_socket(sock) -> bool:
    return sock.bl_idname in {
        "NodeSocketObject",
        "NodeSocketImage",
        "NodeSocketMaterial",
        "NodeSocketCollection",
        "NodeSocketTexture",
    }


def _claim_name(tree: bpy.types.NodeTree, node, name: str) -> None:
    """Give ``node`` its name; of two nodes that want one name, the one with the smaller id gets it.

    Two artists may add nodes of one type at the same moment, both named
    e.g. ``Math``; every replica then settles on the same names.
    """
    if node.name == name:
        return
    holder = tree.nodes.get(name)
    if holder is not None and (node_id(holder) or "") > (node_id(node) or ""):
        holder.name = f"{name}~"  # make room; the holder gets the next free name below
        node.name = name
        holder.name = name
        return
    node.name = name


def _wait_for_socket(node, owner_uuid: str, ctx: ApplyContext) -> bool:
    """A socket of a node named by position is missing: wait for what makes it; False for other nodes."""
    if node.bl_idname in GROUP_NODES:
        _wait_for_group(node, owner_uuid, ctx)
        return True
    if node_items.has_item_sockets(node):
        # The node's item lists, or its zone output's (which come after the output, and so after the input
        # is paired with it); or, for a zone input not paired yet, its own key, applied again to pair it.
        _wait_for_node_part(ctx, "items", node, owner_uuid)
        if hasattr(node, "pair_with_output"):
            paired = node.paired_output
            _wait_for_node_part(ctx, "node" if paired is None else "items", paired or node, owner_uuid)
        return True
    return False


def _wait_for_group(node, owner_uuid: str, ctx: ApplyContext) -> None:
    """A socket of a group node is missing: wait for its group's interface, else for the node.

    The sockets of a group's own input and output nodes come from the owner's interface.
    """
    if node.bl_idname in ("NodeGroupInput", "NodeGroupOutput"):
        ctx.wait_for("iface", owner_uuid)
        return
    group = getattr(node, "node_tree", None)
    group_uuid = ids.peek_uuid(group) if group is not None else None
    if group_uuid is not None:
        ctx.wait_for("iface", group_uuid)
    else:
        _wait_for_node_part(ctx, "node", node, owner_uuid)  # its own key sets its group


def _wait_for_node_part(ctx: ApplyContext, part: str, node, owner_uuid: str) -> None:
    """Wait for the ``part`` key of this node (of any node of the tree if it has no id)."""
    nid = node_id(node)
    if nid is None:
        ctx.wait_for(part, owner_uuid)
    else:
        ctx.wait_for_item(part, (nid,), owner_uuid)


TreeOf = Callable[[bpy.types.ID], "bpy.types.NodeTree | None"]


def tree_parts(tree_of: TreeOf, items: bool = True) -> dict[str, object]:
    """The ``node``, ``items``, ``at``, ``in``, ``out``, ``link`` and ``treeanim`` parts of a kind whose tree
    is ``tree_of(owner)`` (without ``items`` for trees whose nodes have no item lists: legacy textures')."""

    def apply_node(owner, item, doc, ctx: ApplyContext):
        tree = tree_of(owner)
        if tree is None:
            return owner
        (nid,) = item
        by_id = nodes_by_id(tree, assign=False)
        node = by_id.get(nid)
        if doc is None:
            if node is not None:
                tree.nodes.remove(node)
            return owner
        if node is not None and node.bl_idname != doc["type"]:
            tree.nodes.remove(node)
            node = None
        zone_input = doc.get("zone_input")
        if node is None and zone_input and zone_input not in by_id:
            # A zone's output is made once its input is there: Blender crashes evaluating some trees
            # holding an output without its input (the input, made alone, pairs with it when it comes).
            ctx.retry_after_step(ids.get_uuid(owner))
            return owner
        if node is None:
            try:
                node = tree.nodes.new(doc["type"])
            except RuntimeError as exc:
                ctx.report(
                    f"node {doc['name']!r} of type {doc['type']!r} cannot be made in {tree.name!r}: {exc}"
                )
                return owner
            node[NODE_ID_PROP] = nid
            by_id[nid] = node
        _claim_name(tree, node, doc["name"])
        node.label = doc["label"]
        node.hide = doc["hide"]
        node.mute = doc["mute"]
        rna.write_props(node, doc["props"], ctx.resolve, first=("data_type", "operation", "blend_type"))
        if "color_ramp" in doc and getattr(node, "color_ramp", None) is not None:
            structs.write_color_ramp(node.color_ramp, doc["color_ramp"])
        for ident, held in doc.get("structs", {}).items():
            structs.write(node, ident, held)
        paired = doc.get("paired_output")
        if paired and hasattr(node, "pair_with_output"):
            output = by_id.get(paired)
            if output is None:
                ctx.wait_for_item("node", (paired,), ids.get_uuid(owner))
            elif node.paired_output != output:
                node.pair_with_output(output)
        return owner

    def apply_items(owner, item, doc, ctx: ApplyContext):
        """``items/<node id>``: the node's item lists (a key's deletion goes with its node)."""
        tree = tree_of(owner)
        if tree is None or doc is None:
            return owner
        node = nodes_by_id(tree, assign=False).get(item[0])
        if node is None:
            ctx.wait_for_item("node", item, ids.get_uuid(owner))
            return owner
        # A menu socket holds its choice as an enum item's inner number, which names another item once
        # the items are renamed in place: it keeps the choice it had by name, as on the sending side.
        menus = [
            (other, sock.identifier, sock.default_value)
            for other in tree.nodes
            for sock in other.inputs
            if sock.bl_idname == "NodeSocketMenu" and hasattr(sock, "default_value")
        ]
        node_items.apply_items(node, doc, ctx)
        for other, identifier, choice in menus:
            # Found again by identifier: an item socket may have gone with its item.
            sock = next((s for s in other.inputs if s.identifier == identifier), None)
            if choice and sock is not None and sock.default_value != choice:
                try:
                    sock.default_value = choice
                except TypeError:  # that item is gone: the socket's own key says what it holds now
                    pass
        return owner

    def apply_place(owner, item, doc, ctx: ApplyContext):
        """``at/<node id>``: frame parent, location and width (a key's deletion goes with its node)."""
        tree = tree_of(owner)
        if tree is None or doc is None:
            return owner
        by_id = nodes_by_id(tree, assign=False)
        node = by_id.get(item[0])
        parent = by_id.get(doc["parent"]) if doc["parent"] else None
        if node is None or (doc["parent"] and parent is None):
            for nid in (item[0], doc["parent"]):
                if nid and nid not in by_id:
                    ctx.wait_for_item("node", (nid,), ids.get_uuid(owner))
            return owner
        if node.parent != parent and parent is not node:
            node.parent = parent
        node.location = doc["location"]
        node.width = doc["width"]
        return owner

    def apply_socket(sockets_of: str):
        def apply(owner, item, doc, ctx: ApplyContext):
            tree = tree_of(owner)
            if tree is None or doc is None:
                return owner  # a socket value's key goes away with its node
            nid, identifier = item
            node = nodes_by_id(tree, assign=False).get(nid)
            if node is None:
                ctx.wait_for_item("node", (nid,), ids.get_uuid(owner))
                return owner
            sock = _find_socket(getattr(node, sockets_of), identifier)
            if sock is None:
                if not _wait_for_socket(node, ids.get_uuid(owner), ctx):
                    ctx.report(f"node {node.name!r} in {tree.name!r} has no socket {identifier!r}")
                return owner
            if not hasattr(sock, "default_value"):
                if node_items.has_item_sockets(node):
                    # A default item where the room's item has another type (a value for the room's float
                    # state item on a new zone's geometry item): the items key makes the socket it names.
                    _wait_for_socket(node, ids.get_uuid(owner), ctx)
                return owner
            value = doc
            if isinstance(value, list) and None in value:  # partly animated on the sending side
                set_components(sock, "default_value", value)
                return owner
            if isinstance(sock.default_value, bpy.types.ID) or (value is not None and _is_id_socket(sock)):
                value = ctx.resolve(value)
            try:
                sock.default_value = value
            except (TypeError, ValueError, AttributeError) as exc:
                ctx.report(f"node {node.name!r} socket {identifier!r}: {exc}")
                if node_items.has_item_sockets(node):
                    # e.g. a menu switch's choice, named among items that have not arrived: tried again
                    # (and the report dropped) once they have.
                    _wait_for_socket(node, ids.get_uuid(owner), ctx)
            return owner

        return apply

    def apply_link(owner, item, doc, ctx: ApplyContext):
        tree = tree_of(owner)
        if tree is None:
            return owner
        from_id, from_sock, to_id, to_sock = item
        by_id = nodes_by_id(tree, assign=False)
        from_node, to_node = by_id.get(from_id), by_id.get(to_id)
        if from_node is None or to_node is None:
            if doc is not None:
                for nid in (from_id, to_id):
                    if nid not in by_id:
                        ctx.wait_for_item("node", (nid,), ids.get_uuid(owner))
            return owner
        out = _find_socket(from_node.outputs, from_sock)
        inp = _find_socket(to_node.inputs, to_sock)
        existing = None
        if out is not None and inp is not None:
            existing = next((lk for lk in inp.links if lk.from_socket.as_pointer() == out.as_pointer()), None)
        if doc is None:
            # A socket named by identifier where sockets are named by position is a key that an earlier
            # version wrote: the reader that deletes it sends the same link under its position key.
            legacy = any(
                by_position(node) and not name.startswith("#")
                for node, name in ((from_node, from_sock), (to_node, to_sock))
            )
            if existing is not None and not legacy:
                tree.links.remove(existing)
            return owner
        if out is None or inp is None:
            node = from_node if out is None else to_node
            if not _wait_for_socket(node, ids.get_uuid(owner), ctx):
                ctx.report(
                    f"link {from_node.name!r}:{from_sock} -> {to_node.name!r}:{to_sock}: no such socket"
                )
            return owner
        if existing is None:
            existing = tree.links.new(out, inp)
        if existing.is_muted != doc:
            existing.is_muted = doc
        return owner

    def apply_anim(owner, doc: dict, ctx: ApplyContext):
        tree = tree_of(owner)
        if tree is not None:
            animation.apply(tree, doc, ctx)
        return owner

    return {
        "node": Items(apply_node),
        **({"items": Items(apply_items)} if items else {}),
        "at": Items(apply_place),
        "in": Items(apply_socket("inputs"), depth=2),
        "out": Items(apply_socket("outputs"), depth=2),
        "link": Items(apply_link, depth=4),
        "treeanim": apply_anim,
        **nla.parts("treenla", tree_of),
    }
