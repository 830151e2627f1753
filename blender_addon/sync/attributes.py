"""Generic attributes of point clouds and hair curves: read as one sorted list, written in place; and the
removal of the attributes a value no longer lists, for every geometry kind."""

from __future__ import annotations

import bpy

from .arrays import read_attribute, write_attribute
from .context import ApplyContext


def read_attributes(data: bpy.types.ID) -> list[dict[str, object]]:
    """``{name, domain, type, data}`` of each attribute that travels (internal ``.`` ones do not), by name."""
    out = []
    for attr in data.attributes:
        values = None if attr.name.startswith(".") else read_attribute(attr)
        if values is not None:
            out.append({"name": attr.name, "domain": attr.domain, "type": attr.data_type, "data": values})
    return sorted(out, key=lambda a: a["name"])


def remove_unlisted(attributes, wanted: set[str], tolerate: tuple[type[Exception], ...] = ()) -> None:
    """Remove the attributes not named in ``wanted`` (Blender's internal ``.`` ones and ``position`` stay).

    Each is looked up afresh by name: a mesh's attributes live in one array that every remove shifts (and
    may reallocate), so attributes listed before the first remove point at other layers or at freed memory
    (removing every other one). ``tolerate``: errors of a remove that Blender refuses, skipped."""
    names = [a.name for a in attributes if not a.name.startswith(".") and a.name != "position"]
    for name in names:
        attr = attributes.get(name)
        if name in wanted or attr is None:
            continue
        try:
            attributes.remove(attr)
        except tolerate:
            pass


def write_attributes(data: bpy.types.ID, specs: list[dict], ctx: ApplyContext) -> None:
    """Make the attributes of ``data`` those of ``specs`` (the element counts already match)."""
    remove_unlisted(data.attributes, {spec["name"] for spec in specs})
    for spec in specs:
        attr = data.attributes.get(spec["name"])
        if attr is not None and (attr.domain, attr.data_type) != (spec["domain"], spec["type"]):
            data.attributes.remove(attr)
            attr = None
        if attr is None:
            try:
                attr = data.attributes.new(spec["name"], spec["type"], spec["domain"])
            except (TypeError, RuntimeError):
                ctx.report(
                    f"attribute {spec['name']!r} ({spec['domain']}, {spec['type']}) cannot be made here"
                )
                continue
        write_attribute(attr, spec["data"])
