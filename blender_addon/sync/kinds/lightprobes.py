"""Light probes (kind ``lprobe``): type and settings; a new type makes a new probe under the same uuid."""

from __future__ import annotations

import bpy

from .. import rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from ..replacing import replace
from .base import Kind


def serialise(probe: bpy.types.LightProbe, ctx: ReadContext) -> dict[str, object]:
    return {"meta": {"name": probe.name, "type": probe.type, "props": ctx.props(probe, skip=("type",))}}


def describe(probe: bpy.types.LightProbe, ctx: ReadContext) -> dict:
    return {"name": probe.name, "type": probe.type, "props": ctx.props(probe)}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.lightprobes.new(doc["name"], doc["type"])


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.lightprobes.new(name, "SPHERE")  # replaced if its meta names another type


def apply_meta(probe: bpy.types.LightProbe, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if probe.type != doc["type"]:  # the type of a probe is fixed when it is made
        probe = replace(
            probe, bpy.data.lightprobes.new(doc["name"], doc["type"]), bpy.data.lightprobes.remove
        )
    rename(probe, doc["name"])
    rna.write_props(probe, doc["props"], ctx.resolve)
    return probe


KIND = Kind(
    name="lprobe",
    collection="lightprobes",
    rna_type="LightProbe",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("LIGHT_PROBE",),
)
