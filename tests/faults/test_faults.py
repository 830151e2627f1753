"""Process-level fault scenarios against real replica processes.

Every Raft link between two replicas crosses a proxy (``proxy.py``) that the test can cut, and the
replicas are real processes that can be killed with SIGKILL or frozen with SIGSTOP. Each scenario is
bounded in time and ends with checks on what the clients were told: acknowledged writes are all
there, on the leader and then on every node, and the recorded history is linearizable.
"""

from __future__ import annotations

import os
import random
import signal

import pytest
import trio
from history import History
from lincheck import WRITE, check_history

from tools.cluster import (
    ReplicaCluster,
    is_leader_role,
    leader_of,
    longest_writes,
    open_cluster,
    summarize,
)
from tools.kvclient import KVError, OutcomeUnknown, request_once

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CLIENT_ERRORS = (KVError, OutcomeUnknown)


def stepper():
    """Prints each step of a scenario with its time (shown by pytest with the failure, or with -s)."""
    started = trio.current_time()

    def step(text: str) -> None:
        print(f"[{trio.current_time() - started:6.2f}s] {text}")

    return step


async def read_everywhere(cluster: ReplicaCluster, key: str, nodes=None) -> dict[int, bytes | None]:
    """The value of ``key`` in every node's local state."""
    values = {}
    async with cluster.client() as client:
        for i in nodes or cluster.ids:
            values[i] = await client.get_from(i, key, "local")
    return values


async def assert_everywhere(cluster: ReplicaCluster, expected: dict[str, bytes | None], nodes=None) -> None:
    """After convergence, every node holds exactly ``expected``."""
    await cluster.wait_converged(timeout=20, nodes=nodes)
    async with cluster.client() as client:
        for i in nodes or cluster.ids:
            missing = {}
            for key, value in expected.items():
                got = await client.get_from(i, key, "local")
                if got != value:
                    missing[key] = (value, got)
            assert not missing, f"node {i} differs on {len(missing)} keys, e.g. {list(missing.items())[:3]}"


async def assert_linearizable_reads(cluster: ReplicaCluster, expected: dict[str, bytes | None]) -> None:
    async with cluster.client(op_timeout=10) as client:
        wrong = {}
        for key, value in expected.items():
            got = await client.get(key)
            if got != value:
                wrong[key] = (value, got)
    assert not wrong, f"{len(wrong)} acknowledged writes not readable, e.g. {list(wrong.items())[:3]}"


# ---------------------------------------------------------------------------------------------------


async def test_stale_follower_is_not_elected_and_acknowledged_writes_survive(tmp_path):
    """Isolate a follower, commit 50 writes, kill -9 the leader, heal: the stale follower must not win,
    and all 50 acknowledged writes stay readable on the new leader and then on every node."""
    with trio.fail_after(90):
        async with open_cluster(3, tmp_path) as cluster:
            step = stepper()
            leader = await cluster.wait_for_leader()
            stale, other = [i for i in cluster.ids if i != leader]
            step(f"leader {leader}; isolating follower {stale}")
            async with cluster.client() as client:
                await client.put("p8/warmup", b"before")
                await cluster.wait_converged()
                cluster.links.isolate(stale)
                expected = {}
                for n in range(50):
                    key, value = f"p8/{n:02d}", f"value-{n}".encode()
                    await client.put(key, value)  # each one acknowledged, or the test fails here
                    expected[key] = value
            step("50 writes acknowledged")
            status = await cluster.status(stale)
            assert status is not None and status["applied"] < (await cluster.status(leader))["commit"]

            cluster.kill(leader, signal.SIGKILL)
            cluster.links.heal_all()
            step(f"killed leader {leader}, healed")
            new_leader = await cluster.wait_for_leader(timeout=20, exclude={leader})
            step(f"new leader {new_leader}")
            assert new_leader == other, f"the stale node {stale} was elected"
            await assert_linearizable_reads(cluster, expected)
            step("all 50 read back from the new leader")

            await cluster.start(leader)
            step(f"restarted {leader}")
            await assert_everywhere(cluster, expected)
            step("all 50 on every node")


async def test_paused_or_slow_follower_does_not_stop_the_leader(tmp_path):
    """SIGSTOP a follower: the leader keeps committing with the remaining majority. Then slow down
    the links to it: still committing. SIGCONT and heal: it catches up with everything.

    The election window is production's (0.5 to 1 s), not the harness's 0.2 to 0.4 s: this test is about
    the paused follower, not about how long a loaded machine leaves the leader's process unscheduled."""
    with trio.fail_after(90):
        async with open_cluster(3, tmp_path, election_ticks=25) as cluster:
            leader = await cluster.wait_for_leader()
            follower = next(i for i in cluster.ids if i != leader)
            expected: dict[str, bytes] = {}

            client = cluster.client(op_timeout=5)

            async def write_for(seconds: float, prefix: str) -> int:
                acked = 0
                with trio.move_on_after(seconds):
                    while True:
                        key, value = f"{prefix}/{acked:04d}", os.urandom(16)
                        await client.put(key, value)
                        expected[key] = value
                        acked += 1
                return acked

            step = stepper()
            baseline = await write_for(1.0, "base")
            step(f"leader {leader}: {baseline} writes in 1 s with every node up; SIGSTOP {follower}")
            cluster.pause(follower)
            paused = await write_for(2.0, "paused")
            step(f"{paused} writes in 2 s with {follower} stopped; SIGCONT, links to it slowed")
            for peer in cluster.ids:
                if peer != follower:
                    cluster.links.delay(peer, follower, 0.03)
            cluster.resume(follower)
            slowed = await write_for(2.0, "slow")
            step(f"{slowed} writes in 2 s with {follower} behind slow links")
            assert baseline > 0 and paused > 0 and slowed > 0
            # The majority alone keeps committing at a useful rate (the machine is shared: be lenient).
            assert paused >= 10 and paused / 2.0 >= 0.2 * baseline, (baseline, paused)
            assert slowed >= 10, (baseline, slowed)
            statuses = await cluster.statuses(5.0)
            longest = longest_writes(statuses)
            assert leader_of(statuses, cluster.majority) == leader, (
                f"leader {leader} lost its lead: {summarize(statuses)}; longest durable write: {longest}"
            )

            await client.aclose()
            for peer in cluster.ids:
                if peer != follower:
                    cluster.links.delay(peer, follower, 0)
            await assert_everywhere(cluster, expected)
            step(f"{follower} caught up with all {len(expected)} writes")


async def test_a_stalled_disk_does_not_cost_the_leader_its_lead(tmp_path):
    """Every node's durable writes stall for longer than the longest election timeout (a large entry, a
    slow shared disk): the leader keeps its lead and its term, and each write commits. Heartbeats and
    their answers go out while a node writes (``RawNode.take_heartbeats``); before, a leader went silent
    for its whole fsync, and a follower writing the entry missed the leader's check-quorum."""
    with trio.fail_after(90):
        async with open_cluster(3, tmp_path, extra_args=["--timeout", "10"]) as cluster:
            leader = await cluster.wait_for_leader()
            step = stepper()
            term = (await cluster.status(leader, 5.0))["term"]  # a follower may not have heard of it yet
            stall = 1.5 * cluster.election_timeout  # past any node's randomized timeout
            for i in cluster.ids:
                cluster.stall_disk(i, stall)
            step(f"leader {leader}; every durable write now takes {stall:.2f} s longer")
            expected: dict[str, bytes] = {}
            # A write now takes three stalled writes (the leader's, a follower's, the commit's).
            async with cluster.client(op_timeout=30, attempt_timeout=15) as client:
                for n in range(3):
                    key, value = f"stalled/{n}", os.urandom(16)
                    await client.put(key, value)
                    expected[key] = value
                    step(f"{key} acknowledged")
                statuses = await cluster.statuses(5.0)
            longest = longest_writes(statuses)
            assert min(longest.values()) >= stall, longest  # the disks did stall
            assert leader_of(statuses, cluster.majority) == leader, summarize(statuses)
            terms = {i: s["term"] for i, s in statuses.items() if s}
            assert terms == dict.fromkeys(cluster.ids, term), (term, summarize(statuses))
            for i in cluster.ids:
                cluster.stall_disk(i, 0)
            await assert_everywhere(cluster, expected)


async def test_isolated_leader_stops_serving_and_steps_down(tmp_path):
    """Isolate the leader: it acknowledges no further write and answers no linearizable read, while the
    majority elects a new leader and goes on. After the heal the old leader follows and converges."""
    with trio.fail_after(90):
        async with open_cluster(3, tmp_path) as cluster:
            step = stepper()
            history = History()
            old = await cluster.wait_for_leader()
            async with cluster.client(history=history, process="setup") as client:
                await client.put("s5/k", b"v1")
            old_term = (await cluster.status(old))["term"]

            cluster.links.isolate(old)
            isolated_at = trio.current_time()
            step(f"isolated leader {old} (term {old_term})")
            stepped_down: list[float] = []
            answers: list[dict | None] = []

            async def watch_old_leader() -> None:
                while True:
                    status = await cluster.status(old)
                    if status is not None and not is_leader_role(status):
                        stepped_down.append(trio.current_time() - isolated_at)
                        return
                    await trio.sleep(0.05)

            async def write_to_old(n: int) -> None:
                # Straight to the isolated leader, recorded as of unknown outcome: it must never
                # acknowledge, and (see the end) the value must never show up anywhere.
                value = f"lost-{n}".encode()
                entry = history.invoke("to-old", WRITE, "s5/k", value=value)
                message = {"op": "put", "key": "s5/k", "value": value, "client": f"to-old-{n}", "seq": 1}
                answers.append(await request_once(cluster.nodes[old].kv_address, message, 4.0))
                history.unknown(entry)

            with trio.fail_after(15):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch_old_leader)
                    for n in range(3):
                        nursery.start_soon(write_to_old, n)
            step(f"old leader stepped down after {stepped_down[0]:.2f} s; write answers: {answers}")
            for answer in answers:
                assert answer is not None, "the isolated leader did not answer within 4 s"
                assert answer.get("error") is not None, answer
            # CheckQuorum: within a couple of election timeouts (plus scheduling slack).
            assert stepped_down[0] < 4 * cluster.election_timeout + 2.0, stepped_down

            new = await cluster.wait_for_leader(timeout=20, exclude={old})
            step(f"new leader {new}")
            async with cluster.client(history=history, process="majority") as client:
                for n in range(10):
                    await client.put("s5/k", f"v2-{n}".encode())
                await client.put("s5/other", b"x")
            step("majority wrote v2-0..9")

            reads: list[dict | None] = []

            async def linearizable_read_on_old() -> None:
                message = {"op": "get", "key": "s5/k", "consistency": "linearizable"}
                reads.append(await request_once(cluster.nodes[old].kv_address, message, 4.0))

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(linearizable_read_on_old)
            step(f"linearizable reads on the old leader: {reads}")
            for answer in reads:
                assert answer is None or not answer.get("ok"), f"isolated node served a read: {answer}"

            cluster.links.heal_all()
            await cluster.wait_converged(timeout=20)
            step("healed and converged")
            status = await cluster.status(old)
            assert not is_leader_role(status) and status["leader"] == new and status["term"] > old_term
            assert await read_everywhere(cluster, "s5/k") == {i: b"v2-9" for i in cluster.ids}
            async with cluster.client(history=history, process="final") as client:
                assert await client.get("s5/k") == b"v2-9"
            result = check_history(history.ops())
            assert result.ok, str(result)


async def test_kill_every_node_and_restart(tmp_path):
    """SIGTERM one node and restart it; then kill -9 all three at once, in the middle of a write load,
    and restart them: every acknowledged write is still there."""
    with trio.fail_after(90):
        async with open_cluster(3, tmp_path) as cluster:
            step = stepper()
            await cluster.wait_for_leader()
            expected: dict[str, bytes | None] = {}
            async with cluster.client() as client:
                for n in range(60):
                    key = f"all/{n % 40:02d}"
                    value = f"v{n}".encode()
                    await client.put(key, value)
                    expected[key] = value
                await client.delete("all/00")
                expected["all/00"] = None
                swapped, _ = await client.cas("all/01", expected["all/01"], b"swapped")
                assert swapped
                expected["all/01"] = b"swapped"
            first = cluster.ids[0]
            cluster.stop(first)
            assert cluster.nodes[first].exit_codes[-1] == 0, "SIGTERM should exit cleanly"
            await cluster.start(first)
            step(f"{len(expected)} keys written; node {first} stopped with SIGTERM and restarted")

            killed = trio.Event()
            load_acked = trio.Event()  # the kill lands while writes are being acknowledged, on any machine
            acked_under_load = 0

            async def writer(w: int) -> None:
                nonlocal acked_under_load
                async with cluster.client(op_timeout=2.0) as client:
                    n = 0
                    while not killed.is_set():
                        key, value = f"load/{w}-{n}", os.urandom(8)
                        n += 1
                        try:
                            await client.put(key, value)
                        except CLIENT_ERRORS:
                            continue  # unknown or failed: not expected, but allowed to exist
                        expected[key] = value
                        acked_under_load += 1
                        if acked_under_load >= 10:
                            load_acked.set()

            async with trio.open_nursery() as nursery:
                for w in range(3):
                    nursery.start_soon(writer, w)
                await load_acked.wait()
                cluster.kill_all(signal.SIGKILL)
                killed.set()
            step(f"kill -9 of all three nodes during the load; {acked_under_load} load writes acknowledged")
            assert acked_under_load > 0

            await cluster.start_all()
            await cluster.wait_for_leader(timeout=20)
            step("restarted, leader elected")
            await assert_linearizable_reads(cluster, expected)
            await assert_everywhere(cluster, expected)
            step(f"all {len(expected)} acknowledged keys on the leader and on every node")


KEYS = ["ключ", "日本語/キー", "emoji 🎨🧊", "e\u0301clair", "RTL \u05e9\u05dc\u05d5\u05dd", "plain"]
PAYLOADS = [
    bytes(range(256)),
    b"\xff\xfe\xfd invalid utf-8 \xc3\x28 \xa0\xa1 \xed\xa0\x80",
    b"",
    b"\x00" * 1000,
    bytes(reversed(range(256))) * 4,
    os.urandom(200_000),
]


async def test_non_ascii_keys_and_binary_values_are_byte_exact(tmp_path):
    with trio.fail_after(90):
        async with open_cluster(3, tmp_path) as cluster:
            await cluster.wait_for_leader()
            expected = dict(zip(KEYS, PAYLOADS, strict=True))
            async with cluster.client() as client:
                for key, value in expected.items():
                    await client.put(key, value)
                for key, value in expected.items():
                    got = await client.get(key)
                    assert got == value and type(got) is bytes, key
            await assert_everywhere(cluster, expected)
            # and after a crash, from disk
            victim = cluster.ids[-1]
            await cluster.restart(victim)
            await assert_everywhere(cluster, expected, nodes=[victim])


# ---------------------------------------------------------------------------------------------------
# The randomized nemesis


ACK_PREFIX = "n/acked/"


def nemesis_seed() -> int:
    raw = os.environ.get("BLENDSYNC_NEMESIS_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


def nemesis_seconds() -> float:
    return float(os.environ.get("BLENDSYNC_NEMESIS_SECONDS", "15"))


def nemesis_nodes() -> int:
    return int(os.environ.get("BLENDSYNC_NEMESIS_NODES", "3"))


async def run_workload(
    cluster: ReplicaCluster,
    history: History,
    rng: random.Random,
    keys: list[str],
    clients: int,
    stop: trio.Event,
) -> None:
    async def worker(n: int) -> None:
        local = random.Random(rng.random())
        async with cluster.client(history=history, process=n, op_timeout=4.0, attempt_timeout=2.5) as client:
            last_seen: dict[str, bytes | None] = {}
            count = 0
            while not stop.is_set():
                key = local.choice(keys)
                count += 1
                roll = local.random()
                try:
                    if roll < 0.40:
                        last_seen[key] = await client.get(key)
                    elif roll < 0.72:
                        await client.put(key, f"{n}-{count}".encode())
                    elif roll < 0.90:
                        expect = last_seen.get(key)
                        swapped, current = await client.cas(key, expect, f"{n}-{count}".encode())
                        last_seen[key] = f"{n}-{count}".encode() if swapped else current
                    elif roll < 0.96:
                        await client.delete(key)
                    else:
                        # A key of its own, never overwritten: once acknowledged it must be on every
                        # node at the end, whatever happened to the register keys.
                        await client.put(f"{ACK_PREFIX}{n}-{count}", b"%d" % count)
                except CLIENT_ERRORS:
                    await trio.sleep(local.uniform(0, 0.1))

    async with trio.open_nursery() as nursery:
        for n in range(clients):
            nursery.start_soon(worker, n)


async def run_nemesis(cluster: ReplicaCluster, rng: random.Random, stop: trio.Event, log: list[str]) -> None:
    """One fault at a time: inject it, let it last 0.5-2.5 s, repair, let the cluster recover."""
    start = trio.current_time()

    def note(text: str) -> None:
        log.append(f"{trio.current_time() - start:6.2f}s {text}")

    while not stop.is_set():
        await trio.sleep(rng.uniform(0.3, 1.0))
        leader = await cluster.leader(timeout=0.5)
        target = leader if (leader is not None and rng.random() < 0.5) else rng.choice(cluster.ids)
        fault = rng.choice(["isolate", "partition", "kill", "pause", "isolate", "kill", "isolate+kill"])
        duration = rng.uniform(0.5, 2.5)
        if fault == "isolate+kill":
            # The isolated node falls behind while another one dies: no majority until the restart,
            # then the stale node must not win against the restarted one.
            victim = rng.choice([i for i in cluster.ids if i != target])
            note(f"isolate {target}, kill -9 {victim} (leader {leader})")
            cluster.links.isolate(target)
            await trio.sleep(duration / 2)
            cluster.kill(victim, signal.SIGKILL)
            await trio.sleep(duration / 2)
            await cluster.start(victim)
            await trio.sleep(rng.uniform(0, 1.0))
            cluster.links.heal_all()
        elif fault == "isolate":
            note(f"isolate {target} (leader {leader})")
            cluster.links.isolate(target)
            await trio.sleep(duration)
            cluster.links.heal_all()
        elif fault == "partition":
            others = [i for i in cluster.ids if i != target]
            rng.shuffle(others)
            side = [target, *others[: (len(cluster.ids) - 1) // 2 - 1]] if len(cluster.ids) > 3 else [target]
            note(f"partition {side} | rest (leader {leader})")
            cluster.links.partition([side, [i for i in cluster.ids if i not in side]])
            await trio.sleep(duration)
            cluster.links.heal_all()
        elif fault == "kill":
            note(f"kill -9 {target} (leader {leader})")
            cluster.kill(target, signal.SIGKILL)
            await trio.sleep(duration)
            await cluster.start(target)
        else:
            note(f"SIGSTOP {target} (leader {leader})")
            cluster.pause(target)
            await trio.sleep(duration)
            cluster.resume(target)
        note("healed")


async def test_randomized_nemesis_history_is_linearizable(tmp_path):
    seed = nemesis_seed()
    seconds = nemesis_seconds()
    nodes = nemesis_nodes()
    print(f"nemesis seed={seed} seconds={seconds} nodes={nodes} (replay: BLENDSYNC_NEMESIS_SEED={seed})")
    rng = random.Random(seed)
    keys = ["n/a", "n/b", "n/c"]
    history = History()
    log: list[str] = []
    with trio.fail_after(seconds + 90):
        async with open_cluster(nodes, tmp_path) as cluster:
            await cluster.wait_for_leader()
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_workload, cluster, history, rng, keys, rng.randint(5, 8), stop)
                nursery.start_soon(run_nemesis, cluster, random.Random(rng.random()), stop, log)
                await trio.sleep(seconds)
                stop.set()
            print("\n".join(log))

            # Repair everything, then final linearizable reads and per-node state.
            cluster.links.heal_all()
            for i in cluster.ids:
                cluster.resume(i)
                if not cluster.running(i):
                    await cluster.start(i)
            await cluster.wait_for_leader(timeout=20)
            final = {}
            async with cluster.client(history=history, process="final", op_timeout=10) as client:
                for key in keys:
                    final[key] = await client.get(key)
            acknowledged = history.acknowledged_writes()
            own_keys = {e.key: e.value for e in acknowledged if e.key.startswith(ACK_PREFIX)}
            await assert_everywhere(cluster, {**final, **own_keys})

            print("operations:", history.counts(), f"({len(own_keys)} acknowledged writes of own keys)")
            assert len(acknowledged) >= 20, (
                f"too few writes acknowledged to mean anything: {history.counts()}"
            )
            result = check_history(history.ops())
            print(result)
            assert result.ok, f"seed {seed}: {result}"


async def test_checker_catches_stale_local_reads_end_to_end(tmp_path):
    """Reads with consistency="local" on an isolated old leader, after the majority has moved on, are
    stale: the same recorder and checker the nemesis test uses must reject that history."""
    with trio.fail_after(60):
        async with open_cluster(3, tmp_path) as cluster:
            history = History()
            old = await cluster.wait_for_leader()
            async with cluster.client(history=history, process="writer") as client:
                await client.put("stale/k", b"old")
                await cluster.wait_converged()
                cluster.links.isolate(old)
                await cluster.wait_for_leader(timeout=20, exclude={old})
                await client.put("stale/k", b"new")
            async with cluster.client(history=history, process="reader") as reader:
                got = await reader.get_from(old, "stale/k", "local", record=True)
            assert got == b"old"
            result = check_history(history.ops())
            assert not result.ok and result.key == "stale/k"
            assert any(op.kind == "read" and op.result == b"old" for op in result.witness)
            print(result)
