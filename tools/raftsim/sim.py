"""Deterministic simulation of a Raft cluster built from real ``RawNode`` instances.

Two tools live here:

* ``Network``: a lockstep in-memory cluster for unit tests. Messages are delivered in order until the
  cluster is quiet; links can be dropped, cut or isolated and message types ignored.
* ``Simulation``: a seeded, randomized schedule of ticks, message delays, drops, duplicates,
  reordering, partitions, crash-restarts that lose everything not yet persisted, compaction, client
  proposals, reads, leadership transfers and membership changes. The Raft safety properties are
  checked after every step; liveness is checked after healing. Any failure names its seed, and the
  same seed replays the same run::

      python -m tools.raftsim --seeds 0:2000 --nodes 3
      python -m tools.raftsim --seed 17 --nodes 5 --verbose
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import heapq
import os
import random
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from replication.core import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    Config,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    NotLeaderError,
    ProposalDroppedError,
    Raft,
    RaftLog,
    RawNode,
    ReadState,
    Ready,
    Role,
    Snapshot,
)
from replication.core.storage import MemoryStorage

# ---------------------------------------------------------------------------------------------
# Lockstep network for unit tests


class Network:
    """A cluster of RawNodes whose messages are delivered synchronously, in FIFO order."""

    def __init__(
        self,
        peers: int | Sequence[int],
        *,
        election_tick: int = 10,
        heartbeat_tick: int = 1,
        pre_vote: bool = False,
        check_quorum: bool = False,
        seed: int = 0,
        max_entries_per_msg: int = 512,
        max_inflight_msgs: int = 256,
    ) -> None:
        ids = list(range(1, peers + 1)) if isinstance(peers, int) else list(peers)
        self.settings = {
            "election_tick": election_tick,
            "heartbeat_tick": heartbeat_tick,
            "pre_vote": pre_vote,
            "check_quorum": check_quorum,
            "seed": seed,
            "max_entries_per_msg": max_entries_per_msg,
            "max_inflight_msgs": max_inflight_msgs,
        }
        self.rng = random.Random(seed)
        self.storages: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RawNode] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.snapshots_applied: dict[int, list[Snapshot]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.delivered: list[Message] = []
        self._drops: dict[tuple[int, int], float] = {}
        self._ignored: set[MessageType] = set()
        for node_id in ids:
            self.add_node(node_id, voters=ids)

    # -- membership of the simulated cluster ----------------------------------------------------

    def config(self, node_id: int) -> Config:
        return Config(node_id=node_id, **self.settings)  # type: ignore[arg-type]

    def add_node(self, node_id: int, voters: Iterable[int] = ()) -> RawNode:
        """Start a node with fresh storage (``voters=()`` for a node joining an existing cluster)."""
        self.storages[node_id] = MemoryStorage(voters)
        self.applied[node_id] = []
        self.snapshots_applied[node_id] = []
        self.read_states[node_id] = []
        self.nodes[node_id] = RawNode(self.config(node_id), self.storages[node_id])
        return self.nodes[node_id]

    def preload(
        self, node_id: int, terms: Sequence[int], term: int, vote: int = 0, commit: int = 0
    ) -> RawNode:
        """Restart ``node_id`` from a persisted log whose entry i+1 has term ``terms[i]``."""
        storage = self.storages[node_id]
        entries = [Entry(t, i + 1, EntryKind.NORMAL, f"t{t}i{i + 1}".encode()) for i, t in enumerate(terms)]
        storage.append(entries)
        storage.set_hard_state(HardState(term, vote, commit))
        self.applied[node_id] = []
        self.nodes[node_id] = RawNode(self.config(node_id), storage)
        return self.nodes[node_id]

    def log_terms(self, node_id: int) -> list[int]:
        """Terms of the persisted log of ``node_id`` (entry i+1 at position i)."""
        return [e.term for e in self.storages[node_id].all_entries()]

    def stop(self, node_id: int) -> None:
        """Crash ``node_id``: whatever it has not persisted through a Ready is gone."""
        del self.nodes[node_id]

    def restart(self, node_id: int) -> RawNode:
        storage = self.storages[node_id]
        self.applied[node_id] = [e for e in self.applied[node_id] if e.index <= storage.snapshot().index]
        config = dataclasses.replace(self.config(node_id), applied=storage.snapshot().index)
        self.nodes[node_id] = RawNode(config, storage)
        return self.nodes[node_id]

    def raft(self, node_id: int) -> Raft:
        return self.nodes[node_id].raft

    # -- faults ---------------------------------------------------------------------------------

    def drop(self, src: int, dst: int, prob: float) -> None:
        self._drops[(src, dst)] = prob

    def cut(self, a: int, b: int) -> None:
        self.drop(a, b, 1.0)
        self.drop(b, a, 1.0)

    def isolate(self, node_id: int) -> None:
        for other in self.storages:
            if other != node_id:
                self.cut(node_id, other)

    def ignore(self, msg_type: MessageType) -> None:
        self._ignored.add(msg_type)

    def recover(self) -> None:
        self._drops.clear()
        self._ignored.clear()

    def _filtered(self, m: Message) -> bool:
        if m.type in self._ignored:
            return True
        prob = self._drops.get((m.src, m.dst), 0.0)
        return prob > 0 and (prob >= 1.0 or self.rng.random() < prob)

    # -- driving --------------------------------------------------------------------------------

    def process_ready(self, node_id: int) -> list[Message]:
        """Run one Ready through the driver contract: persist, then send, then apply."""
        node = self.nodes[node_id]
        if not node.has_ready():
            return []
        rd = node.ready()
        storage = self.storages[node_id]
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
            self.applied[node_id] = []
            self.snapshots_applied[node_id].append(rd.snapshot)
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        for e in rd.committed_entries:
            if e.kind is EntryKind.CONF_CHANGE:
                storage.set_voters(node.apply_conf_change(ConfChange.from_bytes(e.data)))
            self.applied[node_id].append(e)
        self.read_states[node_id].extend(rd.read_states)
        node.advance(rd)
        return rd.messages

    def send(self, *msgs: Message) -> None:
        """Deliver ``msgs`` and everything they cause until the cluster is quiet."""
        queue = list(msgs)
        for node_id in sorted(self.nodes):
            queue.extend(self.process_ready(node_id))
        budget = 100_000
        while queue:
            budget -= 1
            if budget == 0:
                raise RuntimeError("network did not quiesce")
            m = queue.pop(0)
            dst = self.nodes.get(m.dst)
            src = self.nodes.get(m.src)
            lost = dst is None or self._filtered(m)
            if m.type is MessageType.SNAPSHOT and src is not None:
                src.report_snapshot(m.dst, not lost)
            if lost:
                continue
            assert dst is not None
            self.delivered.append(m)
            dst.step(m)
            queue.extend(self.process_ready(m.dst))
            if src is not None:
                queue.extend(self.process_ready(m.src))

    def flush(self) -> None:
        self.send()

    def tick(self, node_id: int, times: int = 1) -> None:
        for _ in range(times):
            self.nodes[node_id].tick()
        self.flush()

    def tick_all(self, times: int = 1) -> None:
        for _ in range(times):
            for node_id in sorted(self.nodes):
                self.nodes[node_id].tick()
            self.flush()

    def campaign(self, node_id: int) -> None:
        self.nodes[node_id].campaign()
        self.flush()

    def propose(self, node_id: int, data: bytes) -> int:
        index = self.nodes[node_id].propose(data)
        self.flush()
        return index

    def leader(self) -> int | None:
        """The leader with the highest term among running nodes, if any."""
        leaders = [(n.raft.term, i) for i, n in self.nodes.items() if n.raft.role is Role.LEADER]
        return max(leaders)[1] if leaders else None

    def applied_data(self, node_id: int) -> list[bytes]:
        """Payloads applied by ``node_id``, skipping the leaders' empty entries."""
        return [e.data for e in self.applied[node_id] if e.kind is EntryKind.NORMAL and e.data]


# ---------------------------------------------------------------------------------------------
# Randomized simulation


class SimulationFailure(AssertionError):
    """A safety or liveness property was violated; the message says how to replay it."""


def replay_command(seed: int, nodes: int, steps: int, bug: str | None = None) -> str:
    cmd = f"python -m tools.raftsim --seed {seed} --nodes {nodes} --steps {steps}"
    return cmd + (f" --bug {bug}" if bug else "")


@dataclass
class SimOptions:
    nodes: int = 3  # initial voters; one extra node starts outside the cluster for membership changes
    steps: int = 1000  # steps of faults and traffic
    quiet_steps: int = 1500  # upper bound on healed steps to reach agreement
    election_tick: int = 8
    heartbeat_tick: int = 1
    max_entries_per_msg: int = 8  # small, so that batching and pipelining paths get exercised
    max_inflight_msgs: int = 4
    verbose: bool = False


def _encode_state(applied: list[tuple[int, int, bytes]]) -> bytes:
    parts = [struct.pack(">QQI", index, term, len(data)) + data for index, term, data in applied]
    return b"".join(parts)


def _decode_state(blob: bytes) -> list[tuple[int, int, bytes]]:
    out: list[tuple[int, int, bytes]] = []
    pos = 0
    while pos < len(blob):
        index, term, size = struct.unpack_from(">QQI", blob, pos)
        pos += 20
        out.append((index, term, blob[pos : pos + size]))
        pos += size
    return out


@dataclass
class SimNode:
    id: int
    storage: MemoryStorage
    raw: RawNode | None = None
    # The state machine: every applied entry, in order (lost on crash, rebuilt from the snapshot).
    state: list[tuple[int, int, bytes]] = field(default_factory=list)
    proposals: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # index -> (term, value)
    reads: dict[bytes, int] = field(default_factory=dict)  # ctx -> minimum acceptable read index
    restarts: int = 0
    seen_commit: int = 0

    @property
    def alive(self) -> bool:
        return self.raw is not None

    @property
    def applied_index(self) -> int:
        return self.state[-1][0] if self.state else 0


class Simulation:
    def __init__(self, seed: int, options: SimOptions | None = None, bug: str | None = None) -> None:
        self.seed = seed
        self.opts = options or SimOptions()
        self.bug = bug
        self.rng = random.Random(seed)
        self.now = 0
        n = self.opts.nodes
        self.voters0 = list(range(1, n + 1))
        # Network state.
        self.inflight: list[tuple[int, int, Message]] = []
        self.msg_seq = 0
        self.drop_rate = self.rng.choice([0.0, 0.01, 0.05, 0.1])
        self.dup_rate = self.rng.choice([0.0, 0.02])
        # Safety must not depend on the optional protections, so some schedules run without them.
        self.pre_vote = self.rng.random() < 0.75
        self.check_quorum = self.rng.random() < 0.75
        self.nodes: dict[int, SimNode] = {}
        for node_id in range(1, n + 2):
            voters = self.voters0 if node_id <= n else []
            self.nodes[node_id] = SimNode(node_id, MemoryStorage(voters))
            self._start(node_id)
        self.groups: dict[int, int] | None = None  # partition: node -> side
        self.isolated: set[int] = set()
        self.faults = True
        # Observations for the invariants.
        self.leaders_by_term: dict[int, int] = {}
        self.leader_logs: dict[tuple[int, int], tuple[int, int]] = {}  # (node, term) -> (last, term)
        self.entries_seen: dict[tuple[int, int], tuple[EntryKind, bytes, int]] = {}
        self.committed: dict[int, tuple[int, int]] = {}  # index -> (entry term, commit term)
        self.applied_global: dict[int, tuple[int, bytes]] = {}
        self.acked: dict[int, bytes] = {}
        self.proposal_counter = 0
        self.read_counter = 0
        self.stats = {"elections": 0, "acked": 0, "crashes": 0, "snapshots": 0, "conf_changes": 0, "reads": 0}
        self.digest = hashlib.blake2b(digest_size=16)

    # -- plumbing -------------------------------------------------------------------------------

    def fail(self, what: str) -> SimulationFailure:
        cmd = replay_command(self.seed, self.opts.nodes, self.opts.steps, self.bug)
        return SimulationFailure(f"seed {self.seed} (step {self.now}): {what}\n  replay: {cmd}")

    def log(self, text: str) -> None:
        self.digest.update(f"{self.now}:{text};".encode())
        if self.opts.verbose:
            print(f"[{self.now:5d}] {text}")

    def _start(self, node_id: int) -> None:
        node = self.nodes[node_id]
        config = Config(
            node_id=node_id,
            election_tick=self.opts.election_tick,
            heartbeat_tick=self.opts.heartbeat_tick,
            max_entries_per_msg=self.opts.max_entries_per_msg,
            max_inflight_msgs=self.opts.max_inflight_msgs,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
            seed=self.seed * 1000 + node.restarts,
            # The state machine below restarts from the snapshot: replay from there.
            applied=node.storage.snapshot().index,
        )
        node.raw = RawNode(config, node.storage)
        # The state machine restarts from the persisted snapshot and replays the log after it.
        snap = node.storage.snapshot()
        node.state = _decode_state(snap.data) if not snap.is_empty() else []
        node.proposals.clear()
        node.reads.clear()
        node.seen_commit = node.raw.raft.log.committed

    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.raw is not None]

    def current_leader(self) -> SimNode | None:
        leaders = [n for n in self.live() if n.raw is not None and n.raw.raft.role is Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: n.raw.raft.term if n.raw else 0)

    # -- network --------------------------------------------------------------------------------

    def _connected(self, a: int, b: int) -> bool:
        if a in self.isolated or b in self.isolated:
            return False
        return self.groups is None or self.groups.get(a) == self.groups.get(b)

    def _enqueue(self, m: Message) -> None:
        copies = 2 if self.rng.random() < self.dup_rate else 1
        for _ in range(copies):
            r = self.rng.random()
            delay = 1 if r < 0.7 else self.rng.randint(2, 3) if r < 0.9 else self.rng.randint(4, 12)
            self.msg_seq += 1
            heapq.heappush(self.inflight, (self.now + delay, self.msg_seq, m))

    def _deliver_due(self) -> None:
        while self.inflight and self.inflight[0][0] <= self.now:
            _, _, m = heapq.heappop(self.inflight)
            dst = self.nodes[m.dst]
            src = self.nodes[m.src]
            lost = dst.raw is None or not self._connected(m.src, m.dst) or self.rng.random() < self.drop_rate
            if m.type is MessageType.SNAPSHOT and src.raw is not None:
                src.raw.report_snapshot(m.dst, not lost)
            if lost:
                continue
            self.digest.update(
                struct.pack(">BQQQQQI", m.type, m.src, m.dst, m.term, m.index, m.commit, len(m.entries))
            )
            assert dst.raw is not None
            dst.raw.step(m)
            self._send_heartbeats(dst)

    # -- the driver (persist, send, apply, advance) ---------------------------------------------

    def _send_heartbeats(self, node: SimNode) -> None:
        """As the node driver does: heartbeats and their answers leave at once, before the Ready that
        holds what the node has yet to persist (``RawNode.take_heartbeats``)."""
        assert node.raw is not None
        for m in node.raw.take_heartbeats():
            self._enqueue(m)

    def _handle_ready(self, node: SimNode) -> None:
        raw = node.raw
        assert raw is not None
        rd = raw.ready()
        # A crash can also hit the driver between its own steps.
        crash_point = self.rng.random() * 5 if self.faults else 1.0
        self._persist(node, rd)
        if crash_point < 0.01:
            self._crash(node, "after persisting a Ready, before sending")
            return
        for m in rd.messages:
            self._enqueue(m)
        if crash_point < 0.02:
            self._crash(node, "after sending, before applying")
            return
        self._apply(node, rd)
        raw.advance(rd)

    def _persist(self, node: SimNode, rd: Ready) -> None:
        storage = node.storage
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            storage.append(rd.entries)
            self._check_persisted_entries(node, rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)

    def _apply(self, node: SimNode, rd: Ready) -> None:
        raw = node.raw
        assert raw is not None
        if rd.snapshot is not None:
            restored = _decode_state(rd.snapshot.data)
            self._check_snapshot_state(node, rd.snapshot, restored)
            node.state = restored
            node.storage.set_voters(rd.snapshot.meta.voters)
            self.stats["snapshots"] += 1
            self.log(f"n{node.id} installed snapshot at {rd.snapshot.index}")
        for e in rd.committed_entries:
            self._check_apply(node, e)
            node.state.append((e.index, e.term, e.data))
            if e.kind is EntryKind.CONF_CHANGE:
                cc = ConfChange.from_bytes(e.data)
                voters = raw.apply_conf_change(cc)
                node.storage.set_voters(voters)
                self.log(f"n{node.id} applied {cc.type.name} {cc.node_id} -> {sorted(voters)}")
            proposal = node.proposals.pop(e.index, None)
            if proposal is not None and proposal[0] == e.term:
                if proposal[1] != e.data:
                    raise self.fail(f"n{node.id} proposed {proposal} but applied {e} at the same term")
                self.acked[e.index] = e.data
                self.stats["acked"] += 1
        for rs in rd.read_states:
            self._check_read(node, rs)

    def _crash(self, node: SimNode, why: str) -> None:
        node.raw = None
        node.state = []
        node.proposals.clear()
        node.reads.clear()
        self.stats["crashes"] += 1
        self.log(f"crash n{node.id} ({why})")

    def _restart(self, node: SimNode) -> None:
        node.restarts += 1
        self._start(node.id)
        self.log(f"restart n{node.id}")

    # -- invariants -----------------------------------------------------------------------------

    def _check_persisted_entries(self, node: SimNode, entries: Sequence[Entry]) -> None:
        # Log Matching, checked inductively: every (index, term) pair must always name the same
        # entry and sit on top of the same previous term, on every node's persisted log.
        storage = node.storage
        for e in entries:
            if e.index < storage.first_index():
                continue
            try:
                prev_term = storage.term(e.index - 1)
            except CompactedError:
                continue
            key = (e.index, e.term)
            seen = self.entries_seen.get(key)
            value = (e.kind, e.data, prev_term)
            if seen is None:
                self.entries_seen[key] = value
            elif seen != value:
                raise self.fail(f"log matching: n{node.id} persisted {e} after term {prev_term}, seen {seen}")

    def _check_apply(self, node: SimNode, e: Entry) -> None:
        if e.index != node.applied_index + 1:
            raise self.fail(f"n{node.id} applied index {e.index} after {node.applied_index} (gap)")
        seen = self.applied_global.get(e.index)
        if seen is None:
            self.applied_global[e.index] = (e.term, e.data)
        elif seen != (e.term, e.data):
            raise self.fail(f"state machine safety: n{node.id} applied {e}, another node applied {seen}")
        acked = self.acked.get(e.index)
        if acked is not None and acked != e.data:
            raise self.fail(f"acknowledged value {acked!r} at {e.index} replaced by {e.data!r} on n{node.id}")

    def _check_snapshot_state(self, node: SimNode, snap: Snapshot, restored: list) -> None:
        if restored and restored[-1][0] != snap.index:
            raise self.fail(f"snapshot at {snap.index} holds state up to {restored[-1][0]}")
        for pos, (index, term, data) in enumerate(restored):
            if index != pos + 1:
                raise self.fail(f"snapshot state has a gap at {index}")
            seen = self.applied_global.get(index)
            if seen is not None and seen != (term, data):
                raise self.fail(f"state machine safety: snapshot for n{node.id} differs at {index}")
            acked = self.acked.get(index)
            if acked is not None and acked != data:
                raise self.fail(f"acknowledged value at {index} missing from the snapshot sent to n{node.id}")

    def _check_read(self, node: SimNode, rs: ReadState) -> None:
        minimum = node.reads.pop(rs.ctx, None)
        if minimum is None:
            return  # a duplicate answer, or a request issued before a restart
        self.stats["reads"] += 1
        if rs.index < minimum:
            raise self.fail(
                f"linearizable read on n{node.id} returned {rs.index}, but {minimum} was already applied"
            )

    def check_invariants(self) -> None:
        for node in self.live():
            raw = node.raw
            assert raw is not None
            raft = raw.raft
            if raft.role is Role.LEADER:
                self._check_leader(node.id, raft.term, raft.log)
            committed = raft.log.committed
            if committed > node.seen_commit:
                self._record_commits(node, node.seen_commit + 1, committed, raft.term, raft.log)
                node.seen_commit = committed

    def _check_leader(self, node_id: int, term: int, log: RaftLog) -> None:
        holder = self.leaders_by_term.setdefault(term, node_id)
        if holder != node_id:
            raise self.fail(f"election safety: n{holder} and n{node_id} both lead term {term}")
        key = (node_id, term)
        last = log.last_index()
        before = self.leader_logs.get(key)
        if before is None:
            self.stats["elections"] += 1
            self.log(f"n{node_id} leads term {term}")
            # Leader Completeness: entries committed in earlier terms are all in the new leader's log.
            for index, (entry_term, commit_term) in self.committed.items():
                if commit_term < term:
                    self._expect_entry(log, index, entry_term, f"new leader n{node_id} (term {term})")
        else:
            prev_last, prev_term = before
            if last < prev_last:
                raise self.fail(f"leader append-only: n{node_id} log shrank from {prev_last} to {last}")
            with contextlib.suppress(CompactedError):
                if log.term(prev_last) != prev_term:
                    raise self.fail(f"leader append-only: n{node_id} overwrote entry {prev_last}")
        self.leader_logs[key] = (last, log.last_term())

    def _expect_entry(self, log: RaftLog, index: int, term: int, whom: str) -> None:
        if index < log.first_index():
            return  # inside its snapshot, whose content is checked when applied
        if index > log.last_index() or log.term(index) != term:
            raise self.fail(f"leader completeness: {whom} lacks committed entry {index} of term {term}")

    def _record_commits(self, node: SimNode, lo: int, hi: int, node_term: int, log: RaftLog) -> None:
        # The node's current term bounds from above the term in which these entries were committed,
        # so checking leaders of later terms only is sound.
        for index in range(max(lo, log.first_index()), hi + 1):
            entry_term = log.term(index)
            known = self.committed.get(index)
            if known is None:
                self.committed[index] = (entry_term, node_term)
            elif known[0] != entry_term:
                raise self.fail(
                    f"n{node.id} committed term {entry_term} at {index}, term {known[0]} was committed before"
                )
            elif node_term < known[1]:
                self.committed[index] = (entry_term, node_term)
        for other in self.live():
            raft = other.raw.raft if other.raw else None
            if raft is not None and raft.role is Role.LEADER and raft.term > node_term:
                for index in range(max(lo, raft.log.first_index()), hi + 1):
                    self._expect_entry(raft.log, index, self.committed[index][0], f"leader n{other.id}")

    # -- random activity ------------------------------------------------------------------------

    # Per-step probabilities of each kind of event while faults are on.
    FAULT_RATES: tuple[tuple[str, float], ...] = (
        ("crash", 0.006),
        ("restart", 0.02),
        ("partition", 0.006),
        ("heal", 0.012),
        ("isolate", 0.005),
        ("compact", 0.015),
        ("membership", 0.006),
        ("transfer", 0.004),
    )

    def _random_faults(self) -> None:
        rng = self.rng
        r = rng.random()
        event = None
        for name, rate in self.FAULT_RATES:
            if r < rate:
                event = name
                break
            r -= rate
        if event is None:
            return
        live = self.live()
        down = [n for n in self.nodes.values() if n.raw is None]
        if event == "crash" and live and len(down) < self.opts.nodes // 2 + 1:
            self._crash(rng.choice(live), "random")
        elif event == "restart" and down:
            self._restart(rng.choice(down))
        elif event == "partition":
            ids = list(self.nodes)
            rng.shuffle(ids)
            cut = rng.randint(1, len(ids) - 1)
            self.groups = {i: (0 if pos < cut else 1) for pos, i in enumerate(ids)}
            self.log(f"partition {sorted(ids[:cut])} | {sorted(ids[cut:])}")
        elif event == "heal" and (self.groups is not None or self.isolated):
            self.groups = None
            self.isolated.clear()
            self.log("heal")
        elif event == "isolate":
            leader = self.current_leader()
            victim = leader.id if leader is not None and rng.random() < 0.6 else rng.choice(list(self.nodes))
            self.isolated.add(victim)
            self.log(f"isolate n{victim}")
        elif event == "compact" and live:
            self._compact(rng.choice(live))
        elif event == "membership":
            self._change_membership()
        elif event == "transfer":
            leader = self.current_leader()
            if leader is not None and leader.raw is not None:
                target = rng.choice(sorted(leader.raw.raft.voters))
                with contextlib.suppress(NotLeaderError, ProposalDroppedError):
                    leader.raw.transfer_leader(target)
                    self.log(f"n{leader.id} transfers leadership to n{target}")

    def _compact(self, node: SimNode) -> None:
        applied = node.applied_index
        storage = node.storage
        if applied <= storage.snapshot().index or applied > storage.last_index():
            return
        storage.create_snapshot(applied, storage.voters, _encode_state(node.state))
        keep = self.rng.randint(0, 4)
        if applied - keep > storage.first_index() - 1:
            storage.compact(applied - keep)
        self.log(f"n{node.id} snapshot at {applied}, compacted to {storage.first_index() - 1}")

    def _change_membership(self) -> None:
        leader = self.current_leader()
        if leader is None or leader.raw is None:
            return
        voters = leader.raw.raft.voters
        if len(voters) <= self.opts.nodes:
            outsiders = [i for i in self.nodes if i not in voters]
            if not outsiders:
                return
            cc = ConfChange(ConfChangeType.ADD_NODE, self.rng.choice(outsiders))
        else:
            cc = ConfChange(ConfChangeType.REMOVE_NODE, self.rng.choice(sorted(voters)))
        try:
            leader.raw.propose_conf_change(cc)
        except (NotLeaderError, ProposalDroppedError):
            return
        self.stats["conf_changes"] += 1
        self.log(f"n{leader.id} proposes {cc.type.name} {cc.node_id}")

    def _client_traffic(self) -> None:
        rng = self.rng
        live = self.live()
        if not live:
            return
        if rng.random() < 0.2:
            node = rng.choice(live)
            self.proposal_counter += 1
            value = f"v{self.proposal_counter}".encode()
            for _ in range(2):  # try the node, then the leader it names
                raw = node.raw
                assert raw is not None
                try:
                    index = raw.propose(value)
                except NotLeaderError as exc:
                    target = self.nodes.get(exc.leader) if exc.leader is not None else None
                    if target is None or target.raw is None:
                        break
                    node = target
                    continue
                except ProposalDroppedError:
                    break
                node.proposals[index] = (raw.raft.term, value)
                break
        if rng.random() < 0.03:
            node = rng.choice(live)
            raw = node.raw
            assert raw is not None
            self.read_counter += 1
            ctx = f"r{self.read_counter}".encode()
            floor = max((n.applied_index for n in self.live()), default=0)
            try:
                raw.read_index(ctx)
            except NotLeaderError:
                return
            node.reads[ctx] = floor

    # -- the run --------------------------------------------------------------------------------

    def step(self) -> None:
        self.now += 1
        if self.faults:
            self._random_faults()
        self._client_traffic()
        for node in self.live():
            if node.raw is not None and self.rng.random() < 0.35:
                node.raw.tick()
                self._send_heartbeats(node)
        self._deliver_due()
        for node in self.live():
            if node.raw is not None and node.raw.has_ready() and self.rng.random() < 0.85:
                self._handle_ready(node)
        self.check_invariants()

    def heal(self) -> None:
        self.faults = False
        self.groups = None
        self.isolated.clear()
        self.drop_rate = 0.0
        self.dup_rate = 0.0
        for node in self.nodes.values():
            if node.raw is None:
                self._restart(node)
        self.log("heal everything")

    def converged(self) -> bool:
        leader = self.current_leader()
        if leader is None or leader.raw is None:
            return False
        raft = leader.raw.raft
        if raft.log.committed != raft.log.last_index() or not raft.committed_entry_in_current_term():
            return False
        target = raft.log.committed
        return all(self.nodes[v].applied_index == target for v in raft.voters)

    def check_final(self) -> None:
        leader = self.current_leader()
        assert leader is not None and leader.raw is not None
        voters = sorted(leader.raw.raft.voters)
        reference = leader.state
        for v in voters:
            if self.nodes[v].state != reference:
                raise self.fail(f"n{v} applied a different sequence than leader n{leader.id}")
        applied = {index: data for index, _, data in reference}
        for index, value in self.acked.items():
            if applied.get(index) != value:
                raise self.fail(f"acknowledged value {value!r} at {index} is missing after healing")

    def run(self) -> Simulation:
        try:
            with _injected(self.bug):
                for _ in range(self.opts.steps):
                    self.step()
                self.heal()
                for _ in range(self.opts.quiet_steps):
                    self.step()
                    if self.converged():
                        break
                else:
                    raise self.fail(f"no agreement {self.opts.quiet_steps} steps after healing")
                self.check_final()
        except SimulationFailure:
            raise
        except Exception as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from exc
        return self


def run_seed(seed: int, nodes: int = 3, steps: int | None = None, bug: str | None = None) -> Simulation:
    opts = SimOptions(nodes=nodes)
    if steps is not None:
        opts.steps = steps
    return Simulation(seed, opts, bug).run()


# ---------------------------------------------------------------------------------------------
# Known bugs, injectable to show the simulator catches them.


def _vote_without_log_check(self: RaftLog, last_index: int, last_term: int) -> bool:
    return True


def _commit_any_term(self: RaftLog, index: int, term: int) -> bool:
    if index > self.committed:
        self.commit_to(index)
        return True
    return False


def _append_without_prev_check(
    self: RaftLog, prev_index: int, prev_term: int, commit: int, entries: Sequence[Entry]
) -> int | None:
    if prev_index > self.last_index():
        return None
    last_new = prev_index + len(entries)
    conflict = self.find_conflict(entries)
    if conflict and conflict > self.committed:
        self.append(entries[conflict - prev_index - 1 :])
    self.commit_to(min(commit, last_new))
    return last_new


KNOWN_BUGS: dict[str, tuple[type, str, Callable[..., object]]] = {
    # Grant votes without the §5.4.1 up-to-date check.
    "vote-any-log": (RaftLog, "is_up_to_date", _vote_without_log_check),
    # Commit by counting replicas of entries from earlier terms (the Figure 8 mistake).
    "commit-old-term": (RaftLog, "maybe_commit", _commit_any_term),
    # Accept AppendEntries without checking the previous entry's term (no Log Matching).
    "append-any-prev": (RaftLog, "maybe_append", _append_without_prev_check),
}


@contextlib.contextmanager
def _injected(bug: str | None) -> Iterator[None]:
    if bug is None:
        yield
        return
    owner, name, replacement = KNOWN_BUGS[bug]
    original = owner.__dict__[name]
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


# ---------------------------------------------------------------------------------------------
# Command line


def parse_range(text: str) -> range:
    """``"A:B"`` -> range(A, B); ``"N"`` -> range(N, N + 1)."""
    if ":" in text:
        lo, hi = text.split(":", 1)
        return range(int(lo), int(hi))
    return range(int(text), int(text) + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.raftsim", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seed", type=int, help="replay one seed")
    group.add_argument("--seeds", help="a block of seeds, A:B (default: $BLENDSYNC_SIM_SEEDS or 0:200)")
    parser.add_argument("--nodes", type=int, default=3, help="initial voters (default 3)")
    parser.add_argument("--steps", type=int, default=SimOptions.steps, help="fault steps per schedule")
    parser.add_argument("--bug", choices=sorted(KNOWN_BUGS), help="inject a known bug into the core")
    parser.add_argument("--verbose", action="store_true", help="print the event trace")
    parser.add_argument("--digest", action="store_true", help="print each schedule's trace digest")
    args = parser.parse_args(argv)

    if args.seed is not None:
        seeds = range(args.seed, args.seed + 1)
    else:
        seeds = parse_range(args.seeds or os.environ.get("BLENDSYNC_SIM_SEEDS", "0:200"))
    started = time.monotonic()
    for seed in seeds:
        opts = SimOptions(nodes=args.nodes, steps=args.steps, verbose=args.verbose)
        try:
            sim = Simulation(seed, opts, args.bug).run()
        except SimulationFailure as exc:
            print(f"FAILED {exc}", file=sys.stderr)
            return 1
        if args.digest or args.seed is not None:
            print(f"seed {seed}: ok {sim.stats} digest {sim.digest.hexdigest()}")
    elapsed = time.monotonic() - started
    print(f"{len(seeds)} schedules with {args.nodes} nodes passed in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
