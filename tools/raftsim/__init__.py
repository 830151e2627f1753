"""The seeded Raft simulator: real ``replication.core`` nodes over an in-memory network and clock.

``python -m tools.raftsim --seeds A:B`` runs a block of schedules; ``--seed N`` replays one. The tests in
tests/replication use ``Network`` (lockstep clusters) and ``Simulation`` (the seeded gate). docs/raft.md
describes both.
"""

from .sim import KNOWN_BUGS, Network, SimOptions, Simulation, SimulationFailure, main, parse_range, run_seed
