"""blendsync: edit one Blender scene together with other artists, through a broadcaster.

Layout of the add-on:

* ``sync/``          the scene <-> key/value layer: one module per datablock kind in ``sync/kinds/``,
                     and the machinery that serialises, tracks changes, applies and hashes;
* ``net.py``         the network thread (socket + sans-IO protocol, no bpy);
* ``session.py``     the sync loop run by a timer on the main thread (``pump()``);
* ``ui.py``          preferences, sidebar panels, lists and operators;
* ``updates.py``     "update available": installs the add-on the server offers, then reconnects;
* ``invite.py``      joining through a ``blendsync://`` invite link (TLS pinned to its certificate);
* ``room_history.py`` blame, checkpoints and restore; ``history_ui.py`` their sidebar panels;
* ``replay.py``      a read-only copy of the room at an earlier seq; ``replay_ui.py`` its Replay box;
* ``share_links.py`` share links for reviewers (the room's owner); ``share_ui.py`` its Share panel;
* ``overlay.py``     other artists' viewports and selections drawn in the 3D view;
* ``protocol_shim``  finds the wire protocol (vendored in the zip, or the repository's).

See docs/addon.md.
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import history_ui, invite, overlay, session, share_ui, ui, updates
from .sync.tracker import ids_from_depsgraph, shading_only_ids

pump = session.pump


@persistent
def _on_depsgraph_update(scene, depsgraph) -> None:
    current = session.current()
    if current is None or current.room is None:
        return
    session.note_dirty(ids_from_depsgraph(depsgraph), shading_only_ids(depsgraph))
    current.display.note_depsgraph(depsgraph)


@persistent
def _on_load_post(*_args) -> None:
    # Another file replaced the scene: it is not the room's any more.
    current = session.current()
    if current is not None and current.room is not None:
        current.leave_room()


@persistent
def _on_undo_pre(*_args) -> None:
    # The step may free datablocks noted since the last pump; what it changes is reported after it.
    session.forget_dirty()


@persistent
def _on_undo_post(*_args) -> None:
    session.note_undo()


@persistent
def _on_bake_complete(*_args) -> None:
    session.note_baked()


_HANDLERS = (
    (bpy.app.handlers.depsgraph_update_post, _on_depsgraph_update),
    (bpy.app.handlers.load_post, _on_load_post),
    (bpy.app.handlers.undo_pre, _on_undo_pre),
    (bpy.app.handlers.redo_pre, _on_undo_pre),
    (bpy.app.handlers.undo_post, _on_undo_post),
    (bpy.app.handlers.redo_post, _on_undo_post),
    (bpy.app.handlers.object_bake_complete, _on_bake_complete),
)


def register() -> None:
    ui.register()
    updates.register()  # its panel sits inside ui's connection panel
    invite.register()  # so does this one
    history_ui.register()
    share_ui.register()  # its panel sits inside ui's room panel
    for handlers, handler in _HANDLERS:
        if handler not in handlers:
            handlers.append(handler)
    overlay.register()


def unregister() -> None:
    session.stop()
    overlay.unregister()
    for handlers, handler in _HANDLERS:
        while handler in handlers:
            handlers.remove(handler)
    share_ui.unregister()
    history_ui.unregister()
    invite.unregister()
    updates.unregister()
    ui.unregister()
