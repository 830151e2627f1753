"""NLA tracks and their strips, one key per track: ``<kind>/<u>/nla/<track name>`` on every kind with
animation data (extras.given), ``mesh/<u>/shapenla/<track name>`` for a mesh's shape keys and
``treenla/<track name>`` for a node tree; the order of the tracks is a key of its own (``nlaorder``,
``shapenlaorder``, ``treenlaorder``), present while there are tracks, like a constraint stack's.

A track's document is ``{props (mute, is_solo, lock), strips}``: its action
strips in order, each ``{name, action (uuid), slot (identifier),
frame_start, frame_end, props, curves}`` (``props``: blend type and in/out,
extrapolation, repeat, scale, action frame range, influence, mute,
reverse…; ``curves``: the strip's own F-curves, animating its influence or
time, each ``{data_path, extrapolation, keys, modifiers}`` as an action's).
An animated influence or time is read from its curve, not from the value
that playing writes into the strip, so playing sends nothing. Two artists
editing two tracks keep both (adding a track changes the order key, not the
other tracks'); the strips of one track are one key. What a strip's action
writes is derived (derived.py). Meta strips, transitions and sound strips do
not travel (Blender's API makes only action strips).
"""

from __future__ import annotations

from collections.abc import Callable

import bpy

from . import fcurves, ids, order, rna
from .context import ApplyContext, ReadContext
from .items import Items

TRACK_PROPS = ("mute", "is_solo", "lock")
# In the order they are written: automatic blending first (while on, Blender recomputes blend in and out),
# the length (action range, repeat, scale) before the blend in and out it bounds.
STRIP_PROPS = (
    "use_auto_blend",
    "action_frame_start",
    "action_frame_end",
    "repeat",
    "scale",
    "blend_type",
    "blend_in",
    "blend_out",
    "extrapolation",
    "influence",
    "use_animated_influence",
    "strip_time",
    "use_animated_time",
    "use_animated_time_cyclic",
    "mute",
    "use_reverse",
    "use_sync_length",
)


# A strip setting its own F-curve animates while the switch is on: playing writes it (derived).
ANIMATED_BY = {"influence": "use_animated_influence", "strip_time": "use_animated_time"}


def _curves(strip) -> list[dict[str, object]]:
    return [
        {
            "data_path": fc.data_path,
            "extrapolation": fc.extrapolation,
            "keys": fcurves.read_keyframes(fc),
            "modifiers": fcurves.read_modifiers(fc),
        }
        for fc in sorted(strip.fcurves, key=lambda fc: fc.data_path)
    ]


def _strip(strip, ctx: ReadContext | None) -> dict[str, object]:
    action = strip.action
    return {
        "name": strip.name,
        "action": (action.name if action is not None else None) if ctx is None else ctx.ref(action),
        "slot": strip.action_slot.identifier if strip.action_slot is not None else None,
        "frame_start": float(strip.frame_start),
        "frame_end": float(strip.frame_end),
        "props": {
            attr: rna.plain(getattr(strip, attr))
            for attr in STRIP_PROPS
            if not (attr in ANIMATED_BY and getattr(strip, ANIMATED_BY[attr]))
        },
        "curves": _curves(strip),
    }


def _write_curves(strip, docs: list[dict]) -> None:
    """The strip's own F-curves (Blender makes them when their switch, a strip prop, goes on)."""
    for doc in docs:
        fc = strip.fcurves.find(doc["data_path"])
        if fc is None:
            continue
        if fc.extrapolation != doc["extrapolation"]:
            fc.extrapolation = doc["extrapolation"]
        if fcurves.read_keyframes(fc) != doc["keys"]:
            fcurves.write_keyframes(fc, doc["keys"])
        if fcurves.read_modifiers(fc) != doc["modifiers"]:
            fcurves.write_modifiers(fc, doc["modifiers"])


def _track(track, ctx: ReadContext | None) -> dict[str, object]:
    return {
        "props": {attr: getattr(track, attr) for attr in TRACK_PROPS},
        "strips": [_strip(s, ctx) for s in track.strips if s.type == "CLIP"],
    }


def _tracks(owner: bpy.types.ID | None):
    ad = getattr(owner, "animation_data", None)
    return ad.nla_tracks if ad is not None else ()


def read(owner: bpy.types.ID | None, ctx: ReadContext, part: str) -> dict[str, object]:
    """The parts ``part`` (one item per track) and ``<part>order`` (names from the bottom up, only while
    there are tracks) of ``owner``'s tracks."""
    tracks = _tracks(owner)
    parts: dict[str, object] = {part: {(track.name,): _track(track, ctx) for track in tracks}}
    if len(tracks):
        parts[part + "order"] = [track.name for track in tracks]
    return parts


def describe(owner: bpy.types.ID | None) -> list:
    return [[track.name, _track(track, None)] for track in _tracks(owner)]


def _strips_match(track, docs: list[dict], ctx: ApplyContext) -> bool:
    strips = [s for s in track.strips if s.type == "CLIP"]
    return len(strips) == len(docs) and all(
        s.name == d["name"] and s.action == ctx.lookup(d["action"]) and s.frame_start == d["frame_start"]
        for s, d in zip(strips, docs, strict=True)
    )


def _write_strips(track, docs: list[dict], ctx: ApplyContext) -> bool:
    """Write the strips; False when a strip could not take its name (another track's strip holds it)."""
    if not _strips_match(track, docs, ctx):
        for strip in list(track.strips):
            track.strips.remove(strip)
        for doc in docs:
            action = ctx.resolve(doc["action"])
            if action is None:
                continue  # its action has not arrived: the track is written again when it does
            strip = track.strips.new(doc["name"], int(doc["frame_start"]), action)
            strip.name = doc["name"]
    by_name = {s.name: s for s in track.strips}
    for doc in docs:
        strip = by_name.get(doc["name"])
        if strip is None:
            continue
        slot = (
            next((s for s in strip.action.slots if s.identifier == doc["slot"]), None)
            if strip.action
            else None
        )
        if slot is not None and strip.action_slot != slot:
            strip.action_slot = slot
        for attr in STRIP_PROPS:
            if attr not in doc["props"]:
                continue
            value = doc["props"][attr]
            try:
                if getattr(strip, attr) != value:
                    setattr(strip, attr, value)
            except (TypeError, ValueError, AttributeError):
                continue
        # The end first when growing, the start first when moving earlier: no strip ends before it starts.
        for attr in (
            ("frame_end", "frame_start")
            if doc["frame_end"] > strip.frame_end
            else ("frame_start", "frame_end")
        ):
            if getattr(strip, attr) != doc[attr]:
                setattr(strip, attr, doc[attr])
        _write_curves(strip, doc.get("curves", []))
    return {s.name for s in track.strips} >= {d["name"] for d in docs if ctx.lookup(d["action"])}


def copy_track(track, ad, prev=None):
    """A copy of ``track`` (settings and clip strips, strip names kept while they are free: a ``.001`` while
    the original holds one) in animation data ``ad``, above ``prev`` (None: on top); returns it with the
    strips whose name could not be taken yet, as ``(strip, wanted name)``."""
    copy = ad.nla_tracks.new(prev=prev)
    for attr in TRACK_PROPS:
        setattr(copy, attr, getattr(track, attr))
    names = []
    for strip in track.strips:
        if strip.type != "CLIP" or strip.action is None:
            continue
        new = copy.strips.new(strip.name, int(strip.frame_start), strip.action)
        names.append((new, strip.name))
        if strip.action_slot is not None:
            new.action_slot = strip.action_slot
        for attr in STRIP_PROPS:
            try:
                setattr(new, attr, getattr(strip, attr))
            except (TypeError, ValueError, AttributeError):
                continue
        new.frame_end = strip.frame_end
        new.frame_start = strip.frame_start
    copy.name = track.name
    return copy, names


def _copy_to_top(ad, track) -> None:
    """Put ``track`` on top of the stack: a copy (settings and clip strips) replaces it (Blender's API adds
    tracks on top or above another, and moves none)."""
    name = track.name
    copy, names = copy_track(track, ad, prev=ad.nla_tracks[-1])
    ad.nla_tracks.remove(track)
    copy.name = name
    for new, strip_name in names:
        new.name = strip_name


def _order(owner: bpy.types.ID, names: list[str], ctx: ApplyContext, part: str, uuid: str) -> None:
    """Stack the tracks in the listed order (bottom up); tracks the list does not name go on top, by name."""
    ad = owner.animation_data
    if ad is None:
        ctx.wait_for(part, uuid)
        return
    stack = order.plan([t.name for t in ad.nla_tracks], names)
    if stack.missing:
        ctx.wait_for(part, uuid)  # a listed track has not arrived: again once it has
    first = stack.first
    if first is None:
        return
    for name in stack.wanted[first:]:
        _copy_to_top(ad, ad.nla_tracks[name])
    owner.update_tag(refresh={"TIME"})


def write(owner: bpy.types.ID, name: str, doc: dict | None, ctx: ApplyContext, part: str, uuid: str) -> None:
    ad = owner.animation_data
    track = ad.nla_tracks.get(name) if ad is not None else None
    if doc is None:
        if track is not None:
            ad.nla_tracks.remove(track)
            owner.update_tag(refresh={"TIME"})
        return
    if track is None:
        ad = ad or owner.animation_data_create()
        track = ad.nla_tracks.new()  # on top; the order key puts it in its place
        track.name = name
    for attr, value in doc["props"].items():
        if getattr(track, attr) != value:
            setattr(track, attr, value)
    if not _write_strips(track, doc["strips"], ctx):
        # A strip name is held by another track's strip until that track's key arrives: again then.
        ctx.wait_for(part, uuid)
    owner.update_tag(refresh={"TIME"})


def parts(
    part: str, owner_of: Callable[[bpy.types.ID], bpy.types.ID | None] = lambda id_data: id_data, after="meta"
) -> dict[str, object]:
    """A kind's parts ``part`` and ``<part>order``: tracks of ``owner_of(datablock)``; while that is None,
    they wait for part ``after`` (the shape keys of a mesh)."""

    def apply_track(id_data: bpy.types.ID, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
        owner = owner_of(id_data)
        if owner is None:
            if doc is not None:
                ctx.wait_for(after, ids.get_uuid(id_data))
            return id_data
        write(owner, item[0], doc, ctx, part, ids.get_uuid(id_data))
        return id_data

    def apply_order(id_data: bpy.types.ID, doc: list | None, ctx: ApplyContext):
        owner = owner_of(id_data)
        if doc is None:
            return id_data
        if owner is None:
            ctx.wait_for(after, ids.get_uuid(id_data))
            return id_data
        _order(owner, doc, ctx, part, ids.get_uuid(id_data))
        return id_data

    return {part: Items(apply_track), part + "order": apply_order}
