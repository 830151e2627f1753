"""What the add-on sends fits the protocol's grammar, whatever names and ids a .blend file holds."""

from __future__ import annotations

import socket
import time

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import link  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.net import HelloInfo, NetThread  # noqa: E402
from blender_addon.protocol_shim import protocol as P  # noqa: E402
from blender_addon.session import gather_presence  # noqa: E402
from blender_addon.sync.keys import parse_key  # noqa: E402

pytestmark = pytest.mark.blender

CONTROLS = "a\x01b\nc\x7fd\x85"


def decodes(event) -> object:
    """The event as a server decodes it (raises RemoteProtocolError if it breaks the grammar)."""
    return P.events.event_from_body(event.to_body(), from_role=P.events.Sender.CLIENT)


@pytest.mark.parametrize(
    ("stored", "kept"),
    [
        ("abc", True),
        ("0123456789abcdef" * 2, True),
        ("u" * 256, True),
        ("u" * 257, False),  # would make keys (and selection entries) past their limits
        ("a/b", False),  # would make a key of four parts
        ("a/b" + "z" * 3000, False),
        ("a\x01b", False),
        ("a\nb", False),
        ("", False),
    ],
)
def test_a_uuid_that_cannot_make_valid_keys_is_replaced(stored, kept):
    ob = link(bpy.data.objects.new("Edited", None))
    ob[sync.ids.UUID_PROP] = stored
    sync.index.index_all()
    uuid = sync.peek_uuid(ob)
    assert (uuid == stored) is kept
    keys = sync.serialise_datablock(ob)
    assert keys
    for key in keys:
        P.check_key(key)
        assert parse_key(key) == ("obj", uuid, key.split("/")[2])  # kind/uuid/part[/item...]
    assert decodes(P.Batch(op_id=1, ops=[["set", key, value] for key, value in keys.items()]))


def test_remote_keys_with_an_unusable_uuid_are_not_ours():
    assert parse_key("obj/abc/meta") == ("obj", "abc", "meta")
    assert parse_key("obj/" + "u" * 256 + "/meta") is not None
    for uuid in ["a\x01b", "u" * 257, "", "\x85"]:
        key = f"obj/{uuid}/meta"
        assert parse_key(key) is None, key


def test_presence_fits_whatever_blender_names_hold():
    scene = bpy.context.scene
    scene.name = CONTROLS + "é" * 200  # Blender cuts it to its 255-byte limit
    artist = "ana\x00\t" + "\U0001f3a8" * 100
    state = gather_presence(artist, [0.2, 0.4, 0.6, 1.0])
    assert state["scene"] == "abcd" + "é" * ((255 - len(CONTROLS.encode())) // 2)
    assert state["name"] == "ana" + "\U0001f3a8" * 63
    decodes(P.Presence(state=state))


def test_presence_leaves_out_a_field_that_cannot_fit():
    state = gather_presence("ana", [0.2, 2.0, 0.6])  # a colour outside 0..1: not sent, the rest is
    assert "color" not in state and state["name"] == "ana"
    decodes(P.Presence(state=state))


def test_a_large_selection_is_cut_to_the_protocols_bounds():
    layer = bpy.context.view_layer
    for i in range(900):
        ob = link(bpy.data.objects.new(f"o{i}", None))
        ob[sync.ids.UUID_PROP] = f"{i:04d}" + "u" * 246  # 250 bytes each: 225 KB in all
        ob.select_set(True, view_layer=layer)
    state = gather_presence("ana", [0.2, 0.4, 0.6])
    assert len(state["selection"]) == P.limits.MAX_SELECTION_BYTES // 250
    assert state["selection"] == sorted(state["selection"])
    decodes(P.Presence(state=state))


def test_hello_names_fit_the_grammar():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    name, version = "me\x00\x1b[31m" + "é" * 300, "4.2\n" + "v" * 100
    hello = HelloInfo(name=name, session="s" * 32, version=version)
    net = NetThread([("127.0.0.1", listener.getsockname()[1])], hello).start()
    try:
        sock, _ = listener.accept()
        sock.settimeout(10)
        conn = P.Connection(P.Role.SERVER)
        end = time.monotonic() + 10
        event = P.NEED_DATA
        while event is P.NEED_DATA and time.monotonic() < end:
            conn.receive_data(sock.recv(65536))
            event = conn.next_event()  # the server's decoder: raises if the hello breaks the grammar
        assert event.client_name == "me[31m" + "é" * 125
        assert event.client_version == "4.2" + "v" * 61
        sock.close()
    finally:
        net.stop()
        listener.close()


def test_an_item_key_past_the_key_limit_stays_local_and_the_other_keys_still_go(monkeypatch):
    """Blender caps names at 63 bytes, so real item keys stay far below 1,024 bytes; if one ever did not
    (escaped names, a long hand-edited uuid), the server would refuse its whole batch with it."""
    import dataclasses

    from blender_addon.sync import serialise as serialise_module
    from blender_addon.sync.context import ReadContext
    from blender_addon.sync.kinds import BY_NAME

    ob = link(bpy.data.objects.new("Long", None))
    ob[sync.ids.UUID_PROP] = "u" * 256
    record = BY_NAME["obj"]
    real = record.serialise

    def with_a_long_item(id_data, ctx):
        parts = real(id_data, ctx)
        parts["in"] = {**parts["in"], ("%" * 300,): True}  # escaped: 900 bytes
        return parts

    monkeypatch.setitem(BY_NAME, "obj", dataclasses.replace(record, serialise=with_a_long_item))
    ctx = serialise_module.read_context()
    assert isinstance(ctx, ReadContext)
    keys = serialise_module.serialise_parts("obj", ob, ctx)
    assert len(ctx.unsent) == 1 and len(ctx.unsent[0].encode()) > P.MAX_KEY_BYTES
    assert keys and all(len(key.encode()) <= P.MAX_KEY_BYTES for key in keys)
    assert decodes(P.Batch(op_id=1, ops=[["set", key, value] for key, value in keys.items()]))
