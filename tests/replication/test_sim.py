"""The deterministic simulation gate: a fixed block of seeded schedules must pass every safety check
after every step and reach agreement after healing; known bugs must be caught; runs must replay.

Set BLENDSYNC_SIM_SEEDS=A:B to run seeds A..B-1 for both cluster sizes instead of the fixed block.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.raftsim import SimOptions, Simulation, SimulationFailure, main, parse_range, run_seed

CHUNK = 100
SLICE = 10  # seeds one worker runs at a time: the two cores stay busy to the end of a chunk
WORKERS = 2  # at most: the machine the suite is sized for has two cores
# The fixed gate: 1200 schedules of 3 voters and 800 of 5 voters (each with one spare node).
FIXED_BLOCKS = {3: range(0, 1200), 5: range(0, 800)}
REPO_ROOT = Path(__file__).resolve().parents[2]


def _blocks() -> list[tuple[int, range]]:
    override = os.environ.get("BLENDSYNC_SIM_SEEDS")
    blocks = {n: parse_range(override) for n in FIXED_BLOCKS} if override else FIXED_BLOCKS
    return [(nodes, chunk) for nodes, seeds in blocks.items() for chunk in _slices(seeds, CHUNK)]


def _slices(seeds: range, size: int) -> list[range]:
    """``seeds`` cut into consecutive ranges of ``size`` (the last may be shorter)."""
    return [seeds[start : start + size] for start in range(0, len(seeds), size)]


def _chunk_id(value: object) -> str:
    return f"seeds{value.start}-{value.stop - 1}" if isinstance(value, range) else f"{value}nodes"


def _run_seeds(nodes: int, seeds: range) -> str | None:
    """Run ``seeds`` in this process; the first failure's report, or None."""
    for seed in seeds:
        try:
            run_seed(seed, nodes=nodes)
        except SimulationFailure as exc:
            return str(exc)
    return None


@pytest.fixture(scope="module")
def workers() -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """One simulator process per core: a schedule is pure computation, alone in its process (spawned,
    not forked from a process holding threads), so the gate's time is divided by the cores."""
    count = max(1, min(WORKERS, len(os.sched_getaffinity(0))))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(count, mp_context=context) as pool:
        yield pool


@pytest.mark.parametrize(("nodes", "seeds"), _blocks(), ids=_chunk_id)
def test_simulated_schedules_are_safe_and_live(
    nodes: int, seeds: range, workers: concurrent.futures.ProcessPoolExecutor
) -> None:
    parts = _slices(seeds, SLICE)
    for report in workers.map(_run_seeds, [nodes] * len(parts), parts):
        if report is not None:
            pytest.fail(report, pytrace=False)


def _first_detection(bug: str, nodes: int, seeds: range) -> SimulationFailure:
    for seed in seeds:
        try:
            Simulation(seed, SimOptions(nodes=nodes), bug).run()
        except SimulationFailure as exc:
            return exc
    raise AssertionError(f"the simulator missed the injected bug {bug!r} in seeds {seeds}")


@pytest.mark.parametrize("nodes", [3, 5])
@pytest.mark.parametrize("bug", ["vote-any-log", "append-any-prev"])
def test_simulator_detects_a_broken_core(bug: str, nodes: int) -> None:
    """A core that grants votes without the up-to-date check, or accepts appends without the
    previous-entry check, is caught within the fixed seed block, and the report replays it."""
    failure = _first_detection(bug, nodes, FIXED_BLOCKS[nodes])
    text = str(failure)
    assert f"--nodes {nodes}" in text and f"--bug {bug}" in text
    seed = int(text.split()[1])
    # The report is reproducible: the same seed fails the same way.
    with pytest.raises(SimulationFailure) as again:
        Simulation(seed, SimOptions(nodes=nodes), bug).run()
    assert str(again.value) == text
    # And the injection does not leak: the same seed passes with the real core.
    run_seed(seed, nodes=nodes)


def test_same_seed_gives_the_same_trace() -> None:
    for nodes in (3, 5):
        first = Simulation(42, SimOptions(nodes=nodes)).run()
        second = Simulation(42, SimOptions(nodes=nodes)).run()
        assert first.digest.hexdigest() == second.digest.hexdigest()
        assert first.stats == second.stats and first.now == second.now
    other = Simulation(43, SimOptions(nodes=3)).run()
    assert other.digest.hexdigest() != Simulation(42, SimOptions(nodes=3)).run().digest.hexdigest()


def test_trace_does_not_depend_on_hash_randomization() -> None:
    """Replaying in a fresh interpreter (different string hashing) gives the same trace."""
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-m", "tools.raftsim", "--seed", "7", "--nodes", "3", "--steps", "300"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=120,
            check=True,
        )
        outputs.append(proc.stdout.splitlines()[0])
    assert outputs[0] == outputs[1]
    assert "digest" in outputs[0]


def test_the_gate_exercises_the_interesting_paths() -> None:
    """A sample of the block really produces elections, crashes, snapshots, membership changes,
    acknowledged writes and linearizable reads (so passing means something)."""
    totals: dict[str, int] = {}
    for seed in range(20):
        for key, value in Simulation(seed, SimOptions(nodes=3)).run().stats.items():
            totals[key] = totals.get(key, 0) + value
    for key in ("elections", "acked", "crashes", "snapshots", "conf_changes", "reads"):
        assert totals[key] >= 10, totals


def test_cli_reports_failures_with_a_replay_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "0:3", "--steps", "200"]) == 0
    assert "3 schedules with 3 nodes passed" in capsys.readouterr().out
    failure = _first_detection("vote-any-log", 3, FIXED_BLOCKS[3])
    seed = int(str(failure).split()[1])
    assert main(["--seed", str(seed), "--bug", "vote-any-log"]) == 1
    err = capsys.readouterr().err
    assert f"python -m tools.raftsim --seed {seed} --nodes 3" in err
