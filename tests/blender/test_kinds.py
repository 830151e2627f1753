"""The registry of datablock kinds: one module per kind, each registered once and round-trip tested."""

from __future__ import annotations

import pkgutil

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import BUILDERS, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync import kinds  # noqa: E402

pytestmark = pytest.mark.blender


def test_every_kind_module_is_registered_once_under_its_collection_name():
    modules = {m.name for m in pkgutil.iter_modules(kinds.__path__)} - {"base"}
    assert sorted(kind.collection for kind in kinds.REGISTRY) == sorted(modules)
    assert [kind.name for kind in kinds.REGISTRY] == list(sync.KINDS)
    assert {kind.name: tuple(kind.parts) for kind in kinds.REGISTRY} == sync.PARTS


def test_every_part_of_every_kind_has_a_roundtrip_row():
    """A new kind (or part) without a scene builder in tests/blender/scene_builders.py fails here."""
    seen = set()
    for build, _kind in BUILDERS.values():
        reset_scene()
        build()
        seen |= {sync.parse_key(key)[0::2] for key in sync.serialise_scene()}
    assert seen == {(kind.name, part) for kind in kinds.REGISTRY for part in kind.parts}
