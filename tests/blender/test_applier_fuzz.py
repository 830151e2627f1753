"""The applier fed a sender's successive states in any order: parts of them, deletes and older values in
between, in batches or one op at a time. Nothing escapes it but its recorded errors, and once a whole state
has arrived the receiver's scene hashes as the sender's did.

The sender's edits add, remove and move items of the arrays the applier rebuilds (fuzz_edits.py): holding a
pointer into such an array across an add or remove, or an RNA setter whose update misreads its pointer,
crashes Blender here. Run it with more examples and other seeds, one process per run (a crash is an exit
code, not a failed test)::

    FUZZ_EXAMPLES=40 FUZZ_EVERYTHING=1 python -X faulthandler -m pytest tests/blender/test_applier_fuzz.py \
        --hypothesis-seed=7

``FUZZ_TRACE=1`` (with ``-s``) prints each step as it starts: a crash prints no failing example.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import sys
from dataclasses import dataclass

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from fuzz_edits import EDITS  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test  # noqa: E402
from scene_builders import (  # noqa: E402
    build_curve_mappings,
    build_driver_curves,
    build_everything,
    build_grease_pencil,
    build_hair_curves,
    build_material,
    build_mesh,
    build_metaball,
    build_modifiers,
    build_nla,
    build_node_group,
    build_pointcloud,
    build_rig,
    build_shape_keys,
    evaluate_scenes,
    reset_scene,
)

from blender_addon import sync  # noqa: E402
from blender_addon.sync import ids  # noqa: E402

pytestmark = pytest.mark.blender

Ops = list[tuple[str, bytes | None]]
# Local runs widen the search; the suite's run is bounded and the same every time.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
EVERYTHING = os.environ.get("FUZZ_EVERYTHING") == "1"
BATCHES = (1, 7, 60, 1_000_000)
WHOLE_BATCHES = BATCHES[1:]  # a whole state one op at a time is test_roundtrip's; it costs a minute here
PART = 80  # at most this many values of a state at a time
TRACE = os.environ.get("FUZZ_TRACE") == "1"  # each step printed as it starts: a crash leaves no report


def trace(step: str) -> None:
    if TRACE:
        print(step, file=sys.stderr, flush=True)


def build_base() -> None:
    """Every kind whose items the edits add and remove (build_everything for a wider search)."""
    if EVERYTHING:
        build_everything()
        return
    for build in (
        build_mesh,
        build_modifiers,
        build_material,
        build_shape_keys,
        build_rig,
        build_grease_pencil,
        build_nla,
        build_driver_curves,
        build_curve_mappings,
        build_pointcloud,
        build_hair_curves,
        build_node_group,
        build_metaball,
    ):
        build()
    evaluate_scenes()


def tag_animated() -> None:
    """What Blender's editors tag after an edit: an F-curve or F-modifier changed from Python is evaluated
    again only once its owner is tagged (else the sender keeps the value from before the edit)."""
    for coll in (bpy.data.objects, bpy.data.shape_keys, bpy.data.materials, bpy.data.node_groups):
        for id_data in coll:
            if getattr(id_data, "animation_data", None) is not None:
                id_data.update_tag(refresh={"TIME"} if isinstance(id_data, bpy.types.Object) else set())


_uuids = itertools.count()


def _counted_uuid() -> str:
    """Uuids in the order they are given (the applier orders keys by uuid: random ones made a failure
    that could not be replayed)."""
    return hashlib.md5(str(next(_uuids)).encode()).hexdigest()  # node ids are a uuid's first 16 digits


@dataclass(frozen=True)
class Snapshot:
    ops: Ops  # the sender's values, in an order that is the same every run (by name, then key)
    hash: str
    description: dict  # what the hash is made from, to tell where a receiver differs

    @property
    def keys(self) -> set[str]:
        return {key for key, _ in self.ops}


def capture() -> Snapshot:
    evaluate_scenes()
    names = {uuid: f"{kind}:{id_data.name}" for uuid, (kind, id_data) in sync.index_all(assign=False).items()}
    values = sync.serialise_scene()

    def by_name(key: str) -> str:
        return "/".join(names.get(segment, segment) for segment in key.split("/"))

    ops = sorted(values.items(), key=lambda op: (by_name(op[0]), op[0]))
    return Snapshot(ops, sync.scene_hash(), sync.scene_description())


def differences(want: object, got: object, path: str = "") -> list[str]:
    """Where two scene descriptions differ (the first few places)."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for key in sorted(set(want) | set(got), key=str):
            if want.get(key) != got.get(key):
                out += differences(want.get(key), got.get(key), f"{path}/{key}")
        return out[:6]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [
            d
            for i, (a, b) in enumerate(zip(want, got, strict=True))
            if a != b
            for d in differences(a, b, f"{path}[{i}]")
        ][:6]
    return [f"{path}: sent {str(want)[:300]} received {str(got)[:300]}"]


class ApplierMachine(RuleBasedStateMachine):
    @initialize(
        edits=st.lists(
            st.tuples(st.sampled_from(sorted(EDITS)), st.integers(0, 9999)), min_size=1, max_size=5
        )
    )
    def send(self, edits: list[tuple[str, int]]) -> None:
        """The sender's states: the base scene, then after each edit; the receiver starts empty."""
        global _uuids
        trace(f"state = S()\nstate.send(edits={edits!r})")
        _uuids = itertools.count(1)
        reset_scene()
        build_base()
        self.snapshots = [capture()]
        for name, seed in edits:
            EDITS[name](random.Random(seed))
            tag_animated()
            bpy.context.view_layer.update()
            self.snapshots.append(capture())
        reset_scene()
        self.applier = sync.Applier(sync.ChangeTracker())
        self.present: set[str] = set()  # keys the receiver was given a value of (and not deleted since)

    def _apply(self, ops: Ops, seed: int, batch: int) -> None:
        ops = list(ops)
        random.Random(seed).shuffle(ops)
        for start in range(0, len(ops), batch):
            self.applier.feed(ops[start : start + batch])
            self.applier.step()
        for key, value in ops:
            (self.present.discard if value is None else self.present.add)(key)

    @rule(which=st.integers(0, 99), seed=st.integers(0, 9999), batch=st.sampled_from(WHOLE_BATCHES))
    def apply_whole_state(self, which: int, seed: int, batch: int) -> None:
        """A whole state arrives (with deletes of what it does not hold): the receiver is the sender."""
        trace(f"state.apply_whole_state(which={which}, seed={seed}, batch={batch})")
        snap = self.snapshots[which % len(self.snapshots)]
        gone = [(key, None) for key in sorted(self.present - snap.keys)]
        self._apply([*snap.ops, *gone], seed, batch)
        evaluate_scenes()
        assert self.applier.errors == []
        assert self.applier.pending_links == {}
        if sync.scene_hash() != snap.hash:
            pytest.fail("\n".join(differences(snap.description, sync.scene_description())))

    @rule(which=st.integers(0, 99), seed=st.integers(0, 9999), batch=st.sampled_from(BATCHES))
    def apply_part_of_a_state(self, which: int, seed: int, batch: int) -> None:
        """Some values of a state, perhaps an older one than the receiver holds."""
        trace(f"state.apply_part_of_a_state(which={which}, seed={seed}, batch={batch})")
        snap = self.snapshots[which % len(self.snapshots)]
        rng = random.Random(seed)
        self._apply(rng.sample(snap.ops, rng.randrange(1, min(len(snap.ops), PART) + 1)), seed, batch)

    @rule(seed=st.integers(0, 9999), batch=st.sampled_from(BATCHES))
    def delete_some(self, seed: int, batch: int) -> None:
        trace(f"state.delete_some(seed={seed}, batch={batch})")
        present = sorted(self.present)
        if present:
            rng = random.Random(seed)
            doomed = rng.sample(present, rng.randrange(1, min(len(present), PART) + 1))
            self._apply([(key, None) for key in doomed], seed, batch)


def test_the_applier_reaches_every_state_whatever_it_was_fed_before(monkeypatch):
    monkeypatch.setattr(ids, "new_uuid", _counted_uuid)
    run_state_machine_as_test(
        ApplierMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=int(os.environ.get("FUZZ_STEPS", "5")),
            deadline=None,
            database=None,
            derandomize="FUZZ_EXAMPLES" not in os.environ,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate] if os.environ.get("FUZZ_SHRINK") == "0" else list(Phase),
        ),
    )
