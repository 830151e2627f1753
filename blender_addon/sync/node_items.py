"""Node-specific item lists: the items of capture attribute, bake, menu and index switch, repeat, simulation
and for-each zones, closures, bundles, format string, viewer, field to grid, file output... nodes.

Which lists a node has is read from its RNA (a collection property with a ``new`` function, other than
its sockets), so a node type that a newer Blender adds travels without a table. A list is one key of the
node (``items/<node id>``): each item's name and writable settings (socket or data type, domain...), in
order. The sockets those items make are named by position (``#<index>``, node_trees.py), as are every
socket of such a node and of a zone input node: Blender numbers item sockets with a per-node counter
(``Item_<n>``), which differs between replicas. A merge of two artists' lists (sync/merges.py) is given
its names and order here first (``arrange``), so the artist who merged keeps her items' sockets.
"""

from __future__ import annotations

import bpy

from . import rna
from .context import ApplyContext, ReadContext

# Collections of a node that are not item lists.
NOT_ITEMS = frozenset({"inputs", "outputs", "internal_links"})
# Settings that decide which others exist (e.g. a capture item's data type): written first.
TYPE_PROPS = ("socket_type", "data_type")

_LISTS: dict[str, tuple[str, ...]] = {}  # bl_idname -> its item lists
_ACTIVE: dict[str, tuple[str, ...]] = {}  # bl_idname -> its active item settings
_NESTED: dict[str, tuple[str, ...]] = {}  # item RNA type -> settings held in a struct of their own


def item_lists(node: bpy.types.Node) -> tuple[str, ...]:
    """Names of ``node``'s item lists (``repeat_items``, ``capture_items``...), in RNA order."""
    found = _LISTS.get(node.bl_idname)
    if found is None:
        found = _LISTS[node.bl_idname] = tuple(
            prop.identifier
            for prop in node.bl_rna.properties
            if prop.type == "COLLECTION"
            and prop.identifier not in NOT_ITEMS
            and prop.srna is not None
            and "new" in prop.srna.functions
        )
    return found


def active_props(node: bpy.types.Node) -> tuple[str, ...]:
    """The settings of a node with item lists that say which item is active (``active_index``...): they
    change with the lists (a new item becomes the active one), so they travel in the items key."""
    found = _ACTIVE.get(node.bl_idname)
    if found is None:
        found = _ACTIVE[node.bl_idname] = (
            tuple(
                prop.identifier
                for prop in node.bl_rna.properties
                if prop.type == "INT" and prop.identifier.startswith("active_") and not prop.is_readonly
            )
            if item_lists(node)
            else ()
        )
    return found


def has_item_sockets(node: bpy.types.Node) -> bool:
    """Whether some of ``node``'s sockets come from an item list: its own, or its zone output's."""
    return bool(item_lists(node)) or hasattr(node, "pair_with_output")


def _nested(item: bpy.types.bpy_struct) -> tuple[str, ...]:
    """An item's settings held in a struct of its own (a file output item's image ``format``)."""
    rna_type = item.bl_rna
    found = _NESTED.get(rna_type.identifier)
    if found is None:
        found = _NESTED[rna_type.identifier] = tuple(
            prop.identifier
            for prop in rna_type.properties
            if prop.type == "POINTER"
            and prop.is_readonly
            and prop.identifier != "rna_type"
            and not _is_id_type(prop.fixed_type)
        )
    return found


def _is_id_type(srna) -> bool:
    while srna is not None:
        if srna.identifier == "ID":
            return True
        srna = srna.base
    return False


def _read_item(item: bpy.types.bpy_struct, ctx: ReadContext) -> dict[str, object]:
    doc = ctx.props(item, nested=_nested(item))
    if "name" in item.bl_rna.properties:
        doc["name"] = item.name  # read_props leaves names out
    return doc


def read_items(node: bpy.types.Node, ctx: ReadContext) -> dict[str, object]:
    """``{list name: [item settings, in order]}`` of every item list of ``node``, and its active item
    settings (``{active_index: 2}``)."""
    doc: dict[str, object] = {
        name: [_read_item(item, ctx) for item in getattr(node, name)] for name in item_lists(node)
    }
    doc.update((name, getattr(node, name)) for name in active_props(node))
    return doc


def _new_item(items, doc: dict[str, object]):
    """A new item at the end of ``items`` with ``doc``'s name and type (the ``new`` function's arguments
    read from RNA; a type ``new`` does not take, e.g. a capture item's data type, is set afterwards)."""
    args: dict[str, object] = {}
    for param in items.bl_rna.functions["new"].parameters:
        if param.is_output or not param.is_required:
            continue
        value = doc.get(param.identifier)
        if param.type == "ENUM":
            choices = [e.identifier for e in param.enum_items]
            args[param.identifier] = value if value in choices else choices[0]
        elif param.type == "STRING":
            args[param.identifier] = value if isinstance(value, str) else ""
    return items.new(**args)


def _apply_list(items, wanted: list[dict], ctx: ApplyContext, where: str) -> None:
    """Bring one item list to ``wanted`` in place, position by position.

    Sockets are named by position, so the item at a position stays the item at that position: its links
    and values stay on the socket, as the room's keys name them (an item removed from the middle makes
    the ones after it take its place, and the room's link and value keys of those positions say so too).
    """
    while len(items) > len(wanted):
        items.remove(items[len(items) - 1])
    for doc in wanted[len(items) :]:
        _new_item(items, doc)
    for item, doc in zip(items, wanted, strict=False):
        rna.write_props(item, {k: v for k, v in doc.items() if k != "name"}, ctx.resolve, first=TYPE_PROPS)
    # Blender keeps item names unique within a list (a taken name gets ``.001``): names moved between
    # items settle once the others have theirs.
    for _ in range(len(wanted) + 1):
        moved = False
        for item, doc in zip(items, wanted, strict=False):
            name = doc.get("name")
            if isinstance(name, str) and item.name != name:
                item.name = name
                moved = True
        if not moved:
            return
    ctx.report(f"item names {[d.get('name') for d in wanted]} cannot all be given in {where}")


def apply_items(node: bpy.types.Node, doc: dict, ctx: ApplyContext) -> None:
    """Apply ``items/<node id>``: every item list of the node, in place, then its active items."""
    lists = item_lists(node)
    for name, wanted in doc.items():
        if not isinstance(wanted, list):
            continue
        if name not in lists:
            ctx.report(f"node {node.name!r} has no item list {name!r}")
            continue
        try:
            _apply_list(getattr(node, name), wanted, ctx, f"{node.name!r} {name}")
        except (TypeError, ValueError, RuntimeError) as exc:
            ctx.report(f"node {node.name!r} {name}: {exc}")
    rna.write_props(node, {k: v for k, v in doc.items() if not isinstance(v, list)}, ctx.resolve)


def arrange(items, base: list[str], wanted: list[dict], renames: dict[str, str] | None = None) -> bool:
    """Give this list the names and order of a merged one (sync/merges.py, ``merge_item_lists``) before
    it is applied position by position: items renamed in place (``renames``, old name -> new; ``base``
    holds the new names) take their new names, the items added here (those not in ``base``) take the
    names the merge gave them at its end, the other edit's items are made where they go and the ones it
    removed go, so that every item here keeps its sockets, and so its links and values. False when it
    cannot."""
    names = [doc.get("name") for doc in wanted]
    here = [getattr(item, "name", None) for item in items]
    if "move" not in items.bl_rna.functions or not all(isinstance(n, str) for n in [*here, *names]):
        return False
    renamed = {n: renames[n] for n in here if n in (renames or {})}
    added = [n for n in here if n not in base and n not in renamed]
    if len(added) > len(names):
        return False
    if added:
        renamed.update(zip(added, names[len(names) - len(added) :], strict=True))
    final: dict[int, str] = {}
    for i, item in enumerate(items):  # through names nobody uses, so that no name is taken while it moves
        if item.name in renamed:
            final[item.as_pointer()] = renamed[item.name]
            item.name = f"blendsync-arranging-{i}"
    for item in items:
        if item.as_pointer() in final:
            item.name = final[item.as_pointer()]
    for i in reversed(range(len(items))):
        if items[i].name not in names:
            items.remove(items[i])
    for doc in wanted:
        if doc["name"] not in [item.name for item in items]:
            _new_item(items, doc).name = doc["name"]
    for target, name in enumerate(names):
        current = next((i for i, item in enumerate(items) if item.name == name), None)
        if current is None:
            return False
        if current != target:
            items.move(current, target)
    return [item.name for item in items] == names


def arrange_unnamed(items, base: int, wanted: int) -> bool:
    """``arrange`` for a list whose items have no names (an index switch's): the merge holds the other
    edit's new items, then ours (sync/merges.py), so as many new items as it lacks are made after the
    ``base`` items, before ours, which keep their sockets. False when it cannot."""
    if "move" not in items.bl_rna.functions or not base <= len(items) <= wanted:
        return False
    for k in range(wanted - len(items)):
        _new_item(items, {})
        items.move(len(items) - 1, base + k)
    return len(items) == wanted
