"""What a datablock of several kinds may carry beside its kind's own data: custom properties
(``<kind>/<u>/prop/<name>``, custom_props.py) and drivers (``<kind>/<u>/driver/<path>/<index>``,
drivers.py). A kind takes them with ``parts={..., **extras.PARTS}`` and ``extras.read`` /
``extras.describe`` in its serialise / describe."""

from __future__ import annotations

import bpy

from . import custom_props, drivers
from .context import ReadContext

PARTS = {"prop": custom_props.PART, "driver": drivers.part()}


def read(id_data: bpy.types.ID, ctx: ReadContext) -> dict[str, object]:
    return {"prop": custom_props.items(id_data, ctx), "driver": drivers.items(id_data, ctx)}


def describe(id_data: bpy.types.ID) -> dict[str, object]:
    return {"custom_props": custom_props.describe(id_data), "drivers": drivers.describe(id_data)}
