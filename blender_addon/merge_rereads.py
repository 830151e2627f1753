"""A merge that moves what the artist made here (sync/merges.py): a node group's interface puts our new
sockets after the other edit's, a node's item lists our new items after theirs. What names them by
position (links and socket values of group input and output nodes, group nodes elsewhere and geometry
nodes modifiers' inputs; a node's own item sockets) must go out again under the new positions, in the
same batch as the merged value.

A merge that removes items ours removed (a repeat zone's item, a group's input) is applied first with
them kept (``merges.staged``): theirs' values, which name sockets by position, were made on that layout and
arrive beside it. Once the applier is done, those items are removed here (Blender moves the links and
values of the sockets after them), and the reading below sends the result.

Sent alone, the merged value would reach the others first, and a receiver reading the datablocks then (the
audit) would send the new sockets' defaults, ordered after ours: our values lost. So the session holds the
merged value, has the applier leave those datablocks unread (as if the artist had changed them), and sends
the value with the next scan's reading of them once the applier is done. Item lists are applied position
by position, so ours are first given the merged names and order here (``arrange``), keeping their sockets.
"""

from __future__ import annotations

import bpy

from . import dirty, sync
from .protocol_shim import protocol
from .sync import merges, node_items, three_way
from .sync.index import find
from .sync.kinds.node_groups import signature
from .sync.node_trees import nodes_by_id, tree_of

Bases = dict[str, tuple[bytes | None, bytes]]  # key -> (theirs, our merged value)


def _node(key: str) -> tuple[bpy.types.ID, bpy.types.Node] | None:
    """The datablock and node of an ``items/<node id>`` key, when both are here."""
    bits = sync.split_key(key)
    owner = find(bits[0], bits[1]) if bits else None
    tree = tree_of(owner)
    node = nodes_by_id(tree, assign=False).get(bits[3][0]) if bits and tree is not None else None
    return None if owner is None or node is None else (owner, node)


class MergeRereads:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._reread: list[bpy.types.ID] = []  # read by the scan once the applier's queue is done
        self._held: Bases = {}  # merged values to send then
        self._removals: dict[str, list[tuple]] = {}  # key -> items to remove once the applier is done

    def arrange(
        self, key: str, base: bytes | None, ours: bytes | None, theirs: bytes | None, merged: bytes
    ) -> bytes | None:
        """Before a merged value is applied: the value to apply (``merged``, or the staged one that keeps
        the items ours removed), with the item lists here given its names and order; None when it cannot
        be (theirs stands)."""
        self._removals.pop(key, None)
        merge = merges.merger(key)
        if merge is not merges.node_items and merge is not merges.node_interface:
            return merged
        fed = merges.staged(key, base, ours, theirs) or merged
        wanted, final = sync.decode_value(fed), sync.decode_value(merged)
        if merge is merges.node_interface:
            gone = merges.interface_items(wanted) - merges.interface_items(final)
            if gone:
                self._removals[key] = sorted(gone, key=str)
            return fed
        found = _node(key)
        if found is None or base is None or ours is None:
            return None
        before, mine, their = (sync.decode_value(value) for value in (base, ours, theirs))
        lists = node_items.item_lists(found[1])
        gone_items = []
        for name, items in wanted.items():
            if isinstance(items, list) and name not in lists:
                return None  # another kind of node here
            if merges.unnamed(items) and merges.unnamed(before.get(name)):
                if not node_items.arrange_unnamed(getattr(found[1], name), len(before[name]), len(items)):
                    return None
                continue
            if isinstance(items, list) and isinstance(before.get(name), list):
                names = [doc.get("name") for doc in before[name] if isinstance(doc, dict)]
                ours_names, theirs_names = (
                    [doc.get("name") for doc in doc_of.get(name, ()) if isinstance(doc, dict)]
                    for doc_of in (mine, their)
                )
                # Items either renamed in place keep their sockets: ours are here under their new names,
                # theirs get theirs here before the lists are arranged.
                renamed = {
                    **three_way.renamed_in_place(names, ours_names),
                    **three_way.renamed_in_place(names, theirs_names),
                }
                names = [renamed.get(n, n) for n in names]
                if not node_items.arrange(getattr(found[1], name), names, items, renamed):
                    return None
                kept = {doc.get("name") for doc in final.get(name, ())}
                gone_items += [(name, doc.get("name")) for doc in items if doc.get("name") not in kept]
        if gone_items:
            self._removals[key] = gone_items
        return fed

    def _remove(self) -> None:
        """The items held back for theirs' values (``arrange``), now removed."""
        for key, gone in self._removals.items():
            bits = sync.split_key(key)
            if bits and bits[0] == "ngroup" and bits[2] == "iface":
                group = find("ngroup", bits[1])
                if group is not None:
                    items = list(group.interface.items_tree)
                    identities = merges.interface_identities([signature(item) for item in items])
                    for item, ident in zip(items, identities, strict=True):
                        if ident in gone:
                            group.interface.remove(item)
                continue
            found = _node(key)
            for name, item_name in gone if found is not None else ():
                items = getattr(found[1], name)
                item = next((item for item in items if item.name == item_name), None)
                if item is not None:
                    items.remove(item)
        self._removals.clear()

    def hold(self, merged: dict[str, bytes], theirs: dict[str, bytes | None]) -> dict[str, bytes]:
        """The merged values to send now; those that move sockets wait for the reading of what names them."""
        for key in merged:
            bits = sync.split_key(key)
            if bits and bits[0] == "ngroup" and bits[2] == "iface":
                group = find("ngroup", bits[1])
                users = bpy.data.user_map(subset={group}).get(group, ()) if group is not None else ()
                reread = [group, *users] if group is not None else []
            else:
                found = _node(key) if merges.merger(key) is merges.node_items else None
                reread = [found[0]] if found is not None else []
            if reread:
                self._held[key] = (theirs.get(key), merged[key])
                self._reread.extend(reread)
        return {key: value for key, value in merged.items() if key not in self._held}

    def overtaken(self, event, view, overridden: set[str], bases: dict) -> list:
        """``protocol.Overridden`` records for the held merges whose key another artist's ``applied``
        (``event``, its values ``view``) set again before they went out: merged once more over that value,
        from the one the held merge was made over (put in ``bases``), as if it had been sent."""
        if not self._held or not isinstance(event, protocol.Applied):
            return []
        out = []
        for key, value in view:
            pair = self._held.pop(key, None) if key not in overridden else None
            if pair is not None:
                self._removals.pop(key, None)
                bases[key] = pair
                by = {"seq": event.seq, "client_id": event.client_id, "op_id": event.op_id}
                out.append(protocol.Overridden(key, our_seq=0, value=value, **by))
        return out

    def superseded(self, keys) -> None:
        """Newer room values of these keys arrived: a held merge of one is out of date (theirs stands)."""
        for key in keys:
            self._held.pop(key, None)
            self._removals.pop(key, None)

    def before_apply(self) -> None:
        """Noted as changed here: the applier does not read them back, and the next scan reads them."""
        dirty.note(self._reread)

    def applied(self) -> None:
        """The applier's queue is done: the items held back go, and what names them is read."""
        self._remove()
        self.before_apply()  # an apply that ended before this call's note still leaves them to the scan
        self._reread.clear()

    def release(self, changed: dict[str, bytes]) -> tuple[dict[str, bytes], Bases]:
        """``changed`` (a scan's) with the held merges once their users can be read; and, per key released,
        (theirs, merged): what a later merge of it starts from."""
        if not self._held or self._reread:
            return changed, {}
        held, self._held = self._held, {}
        released = {key: pair for key, pair in held.items() if key not in changed}
        return {**{key: pair[1] for key, pair in released.items()}, **changed}, released
