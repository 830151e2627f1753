"""Generic reading and writing of RNA properties.

Used by the kinds for flat settings (lights, cameras, materials, modifiers,
shader nodes, node group interfaces...).  Only writable properties are
read.  Pointers to synchronised datablocks become their uuid (and pointers
to datablocks linked from a library that travels, a link into it: see
``ReadContext.ref``); pointers to plain structs listed in ``nested`` are
read recursively; everything else (collections, pointers to kinds that are
not synchronised) is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import bpy
import mathutils

from . import assign, derived, ids, linked

# Properties never worth sending, whatever the struct.
COMMON_SKIP = frozenset(
    {
        "rna_type",
        "name",
        "name_full",
        "session_uid",
        "is_evaluated",
        "original",
        "users",
        "use_fake_user",
        "use_extra_user",
        "is_embedded_data",
        "is_missing",
        "is_runtime_data",
        "is_editmode",
        "is_library_indirect",
        "library",
        "library_weak_reference",
        "asset_data",
        "override_library",
        "preview",
        "tag",
        "is_dirty",
        "use_nodes",
        "show_expanded",
        "show_viewport_expanded",
        "is_active",
        "is_override_data",
        "persistent_uid",
        "select",
        "id_type",
    }
)

Resolver = Callable[[str], "bpy.types.ID | None"]


class Links(Protocol):
    """Which pointers travel as links (answered from every kind, see context.ReadContext)."""

    link_types: frozenset[str]  # RNA types of pointers to synchronised kinds

    def is_synced(self, id_data: bpy.types.ID) -> bool: ...

    def ref(self, id_data: bpy.types.ID | None) -> str | list[str] | None: ...

    def animated(self, id_data: bpy.types.ID) -> derived.Paths: ...


_SCALARS = frozenset({bool, int, float, str})  # what plain() gives back as it is (most settings)
_NUMBERS = frozenset({int, float})


def plain(value: object) -> object:
    """Turn a bpy property value into msgpack-able Python data."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "__len__") and hasattr(value, "__getitem__"):
        flat: list[object] = []
        for item in value:
            if hasattr(item, "__len__") and not isinstance(item, str):
                flat.extend(plain(x) for x in item)  # matrices come as rows
            else:
                flat.append(plain(item))
        return flat
    return str(value)


# (RNA type, its property count, skip, nested, link types) -> (identifier, how to read it, an enum's default
# item or a number's hard range), sorted: walking a type's RNA properties cost more than reading the values
# (an object's sixty settings, a scene's hundreds). The count changes when an add-on registers a property
# on the type.
_PLANS: dict[tuple, tuple[tuple[str, str, object], ...]] = {}


def _plan(
    rna_type: bpy.types.Struct, skip: frozenset[str], nested: frozenset[str], link_types: frozenset[str]
) -> tuple[tuple[str, str, object], ...]:
    key = (rna_type.identifier, len(rna_type.properties), skip, nested, link_types)
    plan = _PLANS.get(key)
    if plan is None:
        steps = []
        for prop in rna_type.properties:
            ident = prop.identifier
            if ident in skip or ident in COMMON_SKIP or ident.startswith("bl_"):
                continue
            if prop.type == "POINTER":
                if ident in nested:
                    steps.append((ident, "nested", ""))
                elif not prop.is_readonly and prop.fixed_type.identifier in link_types:
                    steps.append((ident, "link", ""))
            elif prop.type == "ENUM" and not prop.is_readonly and not prop.is_enum_flag:
                steps.append((ident, "enum", prop.default))
            elif prop.type in ("INT", "FLOAT") and not prop.is_readonly and not prop.array_length:
                steps.append((ident, "number", (prop.hard_min, prop.hard_max)))
            elif prop.type != "COLLECTION" and not prop.is_readonly:
                steps.append((ident, "value", ""))
        plan = _PLANS[key] = tuple(sorted(steps))
    return plan


def read_props(
    struct: bpy.types.bpy_struct,
    links: Links,
    skip: Iterable[str] = (),
    nested: Iterable[str] = (),
) -> dict[str, object]:
    """Writable properties of ``struct`` as a dict sorted by name."""
    out: dict[str, object] = {}
    # What animation writes is read as None (derived.py): playing the animation changes no key.
    animated = links.animated(struct.id_data) if struct.id_data is not None else derived.NOTHING
    prefix = derived.path_of(struct) if animated else ""
    for ident, how, default in _plan(struct.bl_rna, frozenset(skip), frozenset(nested), links.link_types):
        if how == "nested":
            sub = getattr(struct, ident)
            if sub is not None:
                out[ident] = read_props(sub, links)
            continue
        if how == "link":
            target = getattr(struct, ident)
            link = links.ref(target)
            if target is None or link is not None:
                out[ident] = link
            # else: a datablock that does not travel (e.g. linked from a library whose file is missing):
            # leave the property out, so every receiver keeps its own value instead of losing it.
            continue
        try:
            value = getattr(struct, ident)
        except (AttributeError, RuntimeError):  # pragma: no cover - context-dependent properties
            continue
        if how == "enum" and value == "":
            # Matches none of its items (a struct Blender left unset, as in a scene from scenes.new()):
            # read as its default, which a receiver can write.
            if default == "":
                continue
            value = default
        elif how == "number" and type(value) in _NUMBERS:
            # Blender may hold a number outside the range its API writes (a force field's seed drawn as 0, a
            # cache opened with a scale of 0): read as the nearest a receiver can write, which it would hold.
            low, high = default  # type: ignore[misc]
            value = low if value < low else high if value > high else value
        out[ident] = value if type(value) in _SCALARS else plain(value)
        if animated:
            out[ident] = derived.mask(out[ident], animated.get(derived.join(prefix, ident)))
    return out


def _shape(value: list, dims: tuple[int, ...]) -> object:
    dims = tuple(d for d in dims if d)
    if len(dims) <= 1:
        return value
    step = len(value) // dims[0]
    return [value[i * step : (i + 1) * step] for i in range(dims[0])]


def _holds(struct: bpy.types.bpy_struct, ident: str, value: object) -> bool:
    """Whether the struct's property reads as ``value`` (as :func:`read_props` gives it) already."""
    try:
        return plain(getattr(struct, ident)) == value  # the comparison write_changed makes
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return False


def write_props(
    struct: bpy.types.bpy_struct,
    values: dict[str, object],
    resolve: Resolver,
    first: Iterable[str] = (),
) -> None:
    """Write properties read by :func:`read_props`.

    ``resolve`` maps a uuid to a datablock (or None, recording that the link
    is pending).  Properties named in ``first`` are written before the rest,
    for those that change which other properties exist (e.g. a light's type).
    Values Blender refuses are skipped: a value from a newer Blender version
    must not stop the rest of the datablock from being applied.
    """
    order = [k for k in first if k in values] + [k for k in values if k not in set(first)]
    rna_props = struct.bl_rna.properties
    for ident in order:
        prop = rna_props.get(ident)
        if prop is None:
            continue
        value = values[ident]
        try:
            if prop.type == "POINTER":
                if isinstance(value, dict):
                    sub = getattr(struct, ident)
                    if sub is not None:
                        write_props(sub, value, resolve)
                    continue
                target = resolve(value) if isinstance(value, str) or linked.is_ref(value) else None
                if getattr(struct, ident) != target:
                    setattr(struct, ident, target)
                continue
            if value is None:
                continue  # animated here (derived.py): the receiver's animation writes it
            if isinstance(value, list) and None in value:
                assign.set_components(struct, ident, value)
                continue
            if _holds(struct, ident, value):
                # Not written again: a write tags the datablock for evaluation even when nothing changes,
                # and some (a camera's depth of field) make Blender rebuild the scene's relations first.
                continue
            if prop.type == "ENUM" and prop.is_enum_flag:
                value = set(value)
            elif isinstance(value, list):
                value = _shape(value, tuple(getattr(prop, "array_dimensions", ()) or ()))
                if prop.subtype == "MATRIX":  # read as rows (plain), kept by Blender column by column
                    value = mathutils.Matrix(value)
            setattr(struct, ident, value)
        except (AttributeError, TypeError, ValueError, RuntimeError):
            continue


def write_changed(struct: bpy.types.bpy_struct, values: Mapping[str, object], resolve: Resolver) -> None:
    """Write the values (as read by ``read_props``) that differ from the struct's.

    :func:`write_props` leaves a value the struct holds already, too (a particle trail count of 0, below the
    1 Blender accepts, is not written back); this also compares links by uuid without resolving them.
    """
    for ident, value in values.items():
        current = getattr(struct, ident, None)
        if isinstance(current, bpy.types.ID):  # a link travels as a uuid or a link into a library
            current = ids.peek_uuid(current) if current.library is None else linked.known_ref(current)
        if plain(current) != value:
            write_props(struct, {ident: value}, resolve)
