"""Developer tools, not installed with blendsync: benchmarks (``python -m tools.bench``), the test replica
with its KV service (``replica.py``) and client (``kvclient.py``), the launcher of local process clusters
(``cluster.py``) with its link proxies (``proxy.py``), and the seeded Raft simulator (``raftsim/``).
"""
