"""The sidebar's "Not synchronised here" box: what in the current scene does not travel, and why."""

from __future__ import annotations

from .sync.untravelled import UntravelledReport

SHOWN = 4  # lines in the box; the title gives the full count

REPORT = UntravelledReport()


def draw_untravelled(layout, context) -> None:
    scene = getattr(context, "scene", None)
    if scene is None:
        return
    found = REPORT.get(scene)
    if not found:
        return
    box = layout.box()
    box.label(text=f"Not synchronised here ({len(found)})", icon="UNLINKED")
    for item in found[:SHOWN]:
        box.label(text=f"{item.subject}: {item.what} ({item.why})")
