"""Real-Blender tier: runs the add-on's sync layer inside PyPI ``bpy``.

Blender writes caches and config under the user's home unless told
otherwise, so both locations point at a temporary directory before ``bpy``
is imported.  Without ``bpy`` the tests here are skipped, unless
``REQUIRE_BPY=1``, in which case collection fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="blendsync-bpy-")
os.environ["BLENDER_USER_RESOURCES"] = _HOME
os.environ["XDG_CACHE_HOME"] = _HOME

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    import bpy
except ImportError as exc:  # pragma: no cover - depends on the environment
    if os.environ.get("REQUIRE_BPY") == "1":
        raise RuntimeError(
            f"REQUIRE_BPY=1 but the bpy module cannot be imported ({exc}); install bpy==5.0.1"
        ) from exc
    bpy = None


@pytest.fixture(autouse=True)
def empty_scene():
    """Every test starts from Blender's empty factory scene."""
    if bpy is None:
        pytest.skip("bpy (Blender as a Python module) is not installed")
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    yield


def reset_scene() -> None:
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
