"""A boids particle settings' brain (``part/<u>/set/boids``): its settings, states and each state's rules.

One document: the flat settings (speeds, health...), and ``states``: each state's name and settings with
its ``rules`` in order, each rule's type, name and settings (a Goal's or Avoid's object as a uuid). Blender's
API has no ``new()`` for states and rules: its boid operators add, remove and reorder them, acting on the
particle settings in the context and on the active state and rule, so writing sets those indexes.
"""

from __future__ import annotations

import bpy

from . import rna
from .context import ReadContext

# The active state and rule are each artist's (the list's selection), set only to aim the operators.
SKIP = ("active_boid_state_index", "active_boid_rule_index")
MAX_STATES = 64  # more than any brain needs: a bad value cannot make Blender add states for ever
MAX_RULES = 64


def read(boids: bpy.types.BoidSettings, ctx: ReadContext) -> dict[str, object]:
    return {
        **ctx.props(boids, skip=SKIP),
        "states": [
            {
                "name": state.name,
                **ctx.props(state, skip=SKIP),
                "rules": [{"type": rule.type, "name": rule.name, **ctx.props(rule)} for rule in state.rules],
            }
            for state in boids.states
        ],
    }


def _maps(value: object, limit: int, what: str) -> list[dict]:
    if not isinstance(value, list) or len(value) > limit or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{what} are a list of at most {limit} maps")
    return value


def _states(doc: dict) -> list[dict]:
    states = _maps(doc.get("states", []), MAX_STATES, "a boid brain's states")
    for state in states:
        _maps(state.get("rules", []), MAX_RULES, "a boid state's rules")
    return states


def write(settings: bpy.types.ParticleSettings, doc: dict, resolve: rna.Resolver) -> None:
    """Make ``settings.boids`` hold ``doc``: states added or removed at the end, a state's rules made again
    when their types differ from the document's, then every setting written."""
    boids = settings.boids
    states = _states(doc)
    with bpy.context.temp_override(particle_settings=settings):
        while len(boids.states) < len(states):
            bpy.ops.boid.state_add()
        while len(boids.states) > max(1, len(states)):  # Blender keeps one state at least
            boids.active_boid_state_index = len(boids.states) - 1
            bpy.ops.boid.state_del()
        for index, (state, wanted) in enumerate(zip(boids.states, states, strict=False)):
            boids.active_boid_state_index = index
            rules = wanted.get("rules", [])
            if [rule.type for rule in state.rules] != [rule.get("type") for rule in rules]:
                while len(state.rules):
                    state.active_boid_rule_index = 0
                    bpy.ops.boid.rule_del()
                for rule in rules:
                    bpy.ops.boid.rule_add(type=str(rule.get("type")))
            if isinstance(wanted.get("name"), str) and state.name != wanted["name"]:
                state.name = wanted["name"]
            rna.write_changed(state, _settings(wanted), resolve)
            for rule, wanted_rule in zip(state.rules, rules, strict=False):
                if isinstance(wanted_rule.get("name"), str) and rule.name != wanted_rule["name"]:
                    rule.name = wanted_rule["name"]
                rna.write_changed(rule, _settings(wanted_rule), resolve)
        boids.active_boid_state_index = 0
    rna.write_changed(boids, _settings(doc), resolve)


def _settings(doc: dict) -> dict[str, object]:
    return {k: v for k, v in doc.items() if k not in ("states", "rules", "name", "type")}
