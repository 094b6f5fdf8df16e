"""kplane's benchmark suite (``python -m bench``).

Performance targets are checked here, never by timed tests: a load generator in its own
processes drives a real kplane server, and every figure is printed next to a ceiling
measured in the same run on the same machine (a bare uvicorn app returning the same bytes
over the same TLS, raw SQLite inserts or raw etcd puts of the same objects). The request
scenarios run on both storage backends, SQLite and etcd. See docs/performance.md.

Modules: ``scenarios`` (the named scenarios and their registry), ``suite`` (running a
selection), ``context`` (what scenarios share), ``loadgen`` and ``http1`` (the client
processes), ``workers`` (the process pool), ``ceilings`` (the ceiling app and SQLite
inserts), ``servers`` (starting the server processes), ``fixtures`` (the objects measured),
``report`` and ``stats`` (rows, targets, percentiles), ``etcd`` (a local etcd and the
raw-put ceiling), ``compare`` (the backends side by side).
"""
