"""Benchmarks, run as ``python -m tools.bench KIND ...`` from a checkout (docs/performance.md has figures).

``fanout``, ``join`` (server.py): a running broadcaster against a bare relay (``relay``) started in the
same run. ``raft``, ``failover`` (raft.py): replica processes. ``fanout --cluster N``, ``client-failover``
(cluster.py): ``blendsync serve`` clusters.
"""
