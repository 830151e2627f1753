"""Custom properties (ID properties) as one key per property: ``<kind>/<u>/prop/<name>``, and on pose bones
``obj/<u>/pbprop/<bone>/<name>``, on bones ``arm/<u>/boneprop/<bone>/<name>``.

Rigs are built on them (a pose bone's "IK/FK" slider that drivers read), so
two artists changing two of them at the same moment keep both. The layer's
own properties (``blendsync_*``) stay local. A value is ``{"value": v, "ui":
{...}}`` (ints, floats, bools, strings, arrays, nested groups as msgpack
data; ``ui``: min, max, soft limits, step, precision, default, subtype,
description) or ``{"id": link}`` for a property holding a datablock that
travels (its uuid, or a link into a library: linked.py). A datablock nested
inside a group does not travel (that entry is left out). What animation or
drivers write into a property is read as None (derived.py).
"""

from __future__ import annotations

import bpy

from . import derived
from .context import ApplyContext, ReadContext
from .items import Items

OWN_PREFIX = "blendsync_"


def _plain(value: object) -> object:
    """An ID property's value as msgpack data (IDs nested in groups and arrays dropped: see the module)."""
    if hasattr(value, "to_dict"):
        return {str(k): _plain(v) for k, v in value.to_dict().items() if not isinstance(v, bpy.types.ID)}
    if hasattr(value, "to_list"):
        return value.to_list()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not isinstance(v, bpy.types.ID)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value if not isinstance(v, bpy.types.ID)]
    return value


def _ui(struct, name: str) -> dict | None:
    try:
        return dict(sorted(struct.id_properties_ui(name).as_dict().items()))
    except TypeError:  # groups (and some types) carry no UI data
        return None


def names(struct) -> list[str]:
    """Names of ``struct``'s custom properties but the layer's own (bpy structs iterate no keys)."""
    keys = struct.keys()
    return [k for k in keys if not k.startswith(OWN_PREFIX)]


def path(prefix: str, name: str) -> str:
    """Data path of custom property ``name`` of the struct whose path is ``prefix``."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'{prefix}["{quoted}"]'


def read(struct, ctx: ReadContext) -> dict[str, dict]:
    """``{name: document}`` of ``struct``'s custom properties, sorted by name."""
    keys = names(struct)
    if not keys:
        return {}
    animated = ctx.animated(struct.id_data)
    prefix = derived.path_of(struct) if animated else ""
    out: dict[str, dict] = {}
    for name in sorted(keys):
        value = struct[name]
        if isinstance(value, bpy.types.ID):
            ref = ctx.ref(value)
            if ref is not None:
                out[name] = {"id": ref}
            continue  # a datablock that does not travel: each side keeps its own
        plain = _plain(value)
        if animated:
            plain = derived.mask(plain, animated.get(path(prefix, name)))
        out[name] = {"value": plain, "ui": _ui(struct, name)}
    return out


def items(struct, ctx: ReadContext, *outer: str) -> dict[tuple[str, ...], dict]:
    """:func:`read` as the items of a ``prop`` part (``outer``: leading item segments, e.g. a bone name)."""
    return {(*outer, name): doc for name, doc in read(struct, ctx).items()}


def write(struct, name: str, doc: dict | None, ctx: ApplyContext) -> None:
    """Set (or, with None, remove) custom property ``name`` of ``struct``."""
    if name.startswith(OWN_PREFIX):
        return
    if doc is None:
        if name in struct:
            del struct[name]
        return
    if "id" in doc:
        target = ctx.resolve(doc["id"])
        if target is not None:
            struct[name] = target
        return
    value = doc["value"]
    exists = name in struct
    try:
        if value is None or (isinstance(value, list) and None in value):
            # Animated or driven on the sending side: this side's animation writes it; make it exist.
            if not exists:
                default = (doc.get("ui") or {}).get("default", 0.0)
                struct[name] = default if value is None else [default if v is None else v for v in value]
            elif isinstance(value, list):
                current = struct[name]
                for i, v in enumerate(value):
                    if v is not None and i < len(current) and current[i] != v:
                        current[i] = v
        else:
            current = _plain(struct[name]) if exists else None
            if current != value or type(current) is not type(value):
                struct[name] = value
        if doc.get("ui"):
            ui = struct.id_properties_ui(name)
            if dict(sorted(ui.as_dict().items())) != doc["ui"]:
                ui.update(**doc["ui"])
    except (TypeError, ValueError, OverflowError) as exc:
        ctx.report(f"custom property {name!r}: {exc}")
    # Blender's evaluated copy gets the property only once its owner is tagged: a driver reading it that is
    # evaluated before (an operator a later op runs evaluates the scene) fails and stays off.
    struct.id_data.update_tag()


def describe(struct) -> dict:
    """For the scene hash: every custom property but the layer's own, as it is (not masked)."""
    out = {}
    for name in sorted(names(struct)):
        value = struct[name]
        out[name] = ["id", value.name] if isinstance(value, bpy.types.ID) else _plain(value)
    return out


def _apply_id_prop(id_data: bpy.types.ID, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    write(id_data, item[0], doc, ctx)
    return id_data


PART = Items(_apply_id_prop)  # <kind>/<u>/prop/<name>: the datablock's own custom properties
