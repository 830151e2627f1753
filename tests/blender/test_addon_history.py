"""Room history in real Blender processes: blame for the active object, and checkpoint -> edits by
others -> restore converging every artist on the checkpoint's scene."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)

from test_addon_multiprocess import (  # noqa: F401  (artists, server: fixtures)
    CUBE,
    add_empty,
    artists,
    converge,
    move,
    server,
    start_room,
)

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

HISTORY = "__import__('blender_addon.room_history', fromlist=['view'])"


def test_checkpoint_edits_restore_converge_every_artist_and_blame_names_the_editor(server, artists):  # noqa: F811
    _, address = server
    ana, ben, cy = artists("ana", "ben", "cy")
    ana.call("edit", script=CUBE + add_empty("Lamp", (0, 0, 3)))
    start_room(address, ana, [ben, cy])
    before = converge([ana, ben, cy])[0]["hash"]

    ana.call("eval", expr=f"{HISTORY}.name_checkpoint(session, 'before the edits')")
    ana.call("pump_until_idle", quiet=0.2)
    listed = ana.call("eval", expr=f"{HISTORY}.view(session).checkpoints")["value"]
    assert [(c["name"], c["by"]) for c in listed] == [("before the edits", "ana")]

    ben.call("edit", script=move("Cube", (4, 5, 6)) + "bpy.data.meshes['CubeMesh'].vertices[0].co.z = -3.0\n")
    cy.call(
        "edit", script="bpy.data.objects.remove(bpy.data.objects['Lamp'])\n" + add_empty("New", (1, 1, 1))
    )
    edited = converge([ana, ben, cy])
    assert edited[0]["hash"] != before and "Lamp" not in edited[0]["objects"]

    # Blame for the active object: ben moved the cube (object) and edited its mesh (data).
    ana.call("edit", script="bpy.context.view_layer.objects.active = bpy.data.objects['Cube']\n")
    cube = "bpy.context.active_object"
    ana.call(
        "eval", expr=f"[{HISTORY}.request_blame(session, p) for _, p in {HISTORY}.datablock_prefixes({cube})]"
    )
    ana.call("pump_until_idle", quiet=0.2)
    rows = ana.call(
        "eval",
        expr=f"{{label: {HISTORY}.blame_rows(session, p) for label, p in "
        f"{HISTORY}.datablock_prefixes(bpy.data.objects['Cube'])}}",
    )["value"]
    assert set(rows) == {"object", "data"}
    assert any(who == "ben" for _, who, _ in rows["object"]) and any(
        who == "ben" for _, who, _ in rows["data"]
    )

    # cy restores the checkpoint: one operation, and every artist's scene is the checkpoint's again.
    cy.call("eval", expr=f"{HISTORY}.restore(session, {listed[0]['id']})")
    restored = converge([ana, ben, cy])
    assert all(state["hash"] == before for state in restored)
    assert "Lamp" in restored[0]["objects"] and "New" not in restored[0]["objects"]
    undo = cy.call("eval", expr=f"{HISTORY}.view(session).last_restore")["value"]
    assert undo is not None and undo[1] is not None

    # And the restore undoes: back to the edited scene.
    ana.call("eval", expr=f"{HISTORY}.restore(session, {undo[1]})")
    assert all(state["hash"] == edited[0]["hash"] for state in converge([ana, ben, cy]))
