"""The registry of named scenarios, and the scenarios themselves.

A scenario is a function from the run's :class:`BenchContext` to a list of report rows,
registered under a name with :func:`scenario`. ``requires`` names scenarios whose rows
it compares with (its ceilings); the suite runs those first, even under ``--only``.
A scenario registered with ``default=False`` (one that takes minutes) runs only when
named with ``--only``. ``backends`` says which storage backends a scenario is run on: the
request scenarios run once per backend, the SQLite ceiling and the workspace scenarios
on SQLite only, the raw etcd-put ceiling and the two-servers scenario on etcd only.
Registration order is run order: reads before writes, so the LIST is measured before
CREATE has added thousands of objects to the server.

To add a scenario (workspace creation rate, memory per workspace, an etcd backend...),
write a function here or in a module imported by :mod:`bench.suite` and decorate it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import classes as training
from bench import custom_resources, fixtures
from bench import workspaces as ws
from bench.ceilings import SqliteResult, SqliteSpec, sqlite_inserts
from bench.context import BACKENDS, BenchContext, Measurement, split_evenly
from bench.etcd import EtcdPutResult, EtcdPutSpec, etcd_puts
from bench.loadgen import RequestPlan, WatchResult, WatchSpec, WriterResult, WriterSpec, run_writer
from bench.report import Row, Target
from bench.stats import summarize

ScenarioFunction = Callable[[BenchContext], list[Row]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    run: ScenarioFunction
    requires: tuple[str, ...] = ()
    default: bool = True
    backends: tuple[str, ...] = BACKENDS


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, *, description: str, requires: tuple[str, ...] = (), default: bool = True,
    backends: tuple[str, ...] = BACKENDS,
) -> Callable[[ScenarioFunction], ScenarioFunction]:
    """Register the decorated function as the scenario ``name``.

    ``default=False`` keeps it out of a run that names no scenario; ``backends`` limits
    the storage backends it runs on.
    """

    def register(function: ScenarioFunction) -> ScenarioFunction:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} registered twice")
        unknown = [required for required in requires if required not in SCENARIOS]
        if unknown:
            raise ValueError(f"scenario {name!r} requires unregistered {unknown}")
        SCENARIOS[name] = Scenario(name, description, function, requires, default, backends)
        return function

    return register


# -- kplane request/response scenarios -----------------------------------------------------


@scenario("get", description="GET one ConfigMap, against the bare ASGI app returning its bytes")
def get_one(ctx: BenchContext) -> list[Row]:
    plan = RequestPlan("fixed", fixtures.GET_PATH)
    return _against_asgi_ceiling(ctx, plan, name="get", description="GET one ConfigMap",
                                 target=Target("ratio", ">=", 0.40))


@scenario("list", description="LIST a namespace of 100 ConfigMaps (limit=500, as kubectl), "
                              "against the bare ASGI app returning its bytes")
def list_hundred(ctx: BenchContext) -> list[Row]:
    plan = RequestPlan("fixed", fixtures.LIST_PATH)
    return _against_asgi_ceiling(ctx, plan, name="list",
                                 description=f"LIST {ctx.settings.list_size} ConfigMaps",
                                 target=Target("rate", ">=", 1000))


def _against_asgi_ceiling(
    ctx: BenchContext, plan: RequestPlan, *, name: str, description: str, target: Target
) -> list[Row]:
    """Rows ``ceiling-asgi-<name>`` and ``<name>``, measured in alternating windows."""
    ceiling, measured = ctx.alternate([
        Measurement(f"ceiling-asgi-{name}", f"bare uvicorn app, same bytes as {name}",
                    ctx.ceiling_app, plan),
        Measurement(name, description, ctx.kplane, plan),
    ])
    measured.compare_with(ceiling)
    measured.judge(target)
    return [ceiling, measured]


@scenario("get-rv0", description="GET one ConfigMap with resourceVersion=0: from the watch "
                                  "cache without the consistent-read revision check")
def get_any_version(ctx: BenchContext) -> list[Row]:
    # A GET without resourceVersion first asks storage for its current revision (one
    # round trip shared by concurrent reads); resourceVersion=0 skips that, so this row
    # isolates the cache path that should not depend on the backend.
    ctx.ensure_fixtures()
    plan = RequestPlan("fixed", f"{fixtures.GET_PATH}?resourceVersion=0")
    return [ctx.closed_loop(Measurement(
        "get-rv0", "GET one ConfigMap, resourceVersion=0 (any cached version)",
        ctx.kplane, plan))]


@scenario("two-servers", backends=("etcd",),
          description="GET one ConfigMap from one kplane, then from two kplanes sharing one "
                      "etcd and one data directory (same total connections)")
def two_servers(ctx: BenchContext) -> list[Row]:
    plan = RequestPlan("fixed", fixtures.GET_PATH)
    ctx.ensure_fixtures()
    first, second = ctx.kplane, ctx.second_kplane
    # Both measurements use two load processes, so only the number of servers differs.
    one, two = ctx.alternate([
        Measurement("get-1-server", "GET, all connections to one kplane", first, plan,
                    spread=(first, first)),
        Measurement("get-2-servers", "GET, connections split over two kplanes on one etcd",
                    first, plan, spread=(first, second)),
    ])
    two.compare_with(one)
    return [one, two]


# The bare ASGI ceilings are measured inside the GET and LIST scenarios, alternating with
# kplane (see BenchContext.alternate); the SQLite ceiling has no such partner and runs alone,
# before the writes it bounds.
@scenario("ceiling-sqlite", description="raw sqlite3 inserts of the stored object bytes",
          backends=("sqlite",))
def ceiling_sqlite(ctx: BenchContext) -> list[Row]:
    value = ctx.fixtures.stored_object
    settings = ctx.settings
    rows = []
    # One transaction per insert, then as many per transaction as there are concurrent
    # writers in the CREATE scenario (what group commit can gather at best).
    for name, batch in (("ceiling-sqlite-txn", 1), ("ceiling-sqlite-batch", settings.concurrency)):
        spec = SqliteSpec(path=str(ctx.workdir / f"{name}.db"), value=value, batch=batch,
                          duration_s=settings.sqlite_duration_s)
        (result,) = ctx.pool.map(sqlite_inserts, [spec])
        rows.append(_sqlite_row(result, name=name, batch=batch))
    return rows


def _sqlite_row(result: SqliteResult, *, name: str, batch: int) -> Row:
    summary = summarize(result.commit_latencies)
    return Row(
        name=name,
        description=f"sqlite3 WAL, {batch} insert(s) per transaction; latency per commit",
        rate=result.inserts / result.elapsed_s if result.elapsed_s else 0.0,
        p50_ms=summary.p50_ms,
        p99_ms=summary.p99_ms,
        count=result.inserts,
        notes={"batch": batch, "transactions": summary.count},
    )


@scenario("ceiling-etcd-put", backends=("etcd",),
          description="raw etcd Puts of the stored object bytes, same client library and "
                      "concurrency as CREATE")
def ceiling_etcd_put(ctx: BenchContext) -> list[Row]:
    settings = ctx.settings
    spec = EtcdPutSpec(endpoint=ctx.etcd_endpoint, value=ctx.fixtures.stored_object,
                       writers=settings.concurrency,
                       start_at=time.time() + settings.connect_allowance_s,
                       warmup_s=settings.warmup_s, duration_s=settings.duration_s)
    (result,) = ctx.pool.map(etcd_puts, [spec])
    return [_etcd_put_row(result, writers=settings.concurrency,
                          duration_s=settings.duration_s, size=len(spec.value))]


def _etcd_put_row(result: EtcdPutResult, *, writers: int, duration_s: float, size: int) -> Row:
    summary = summarize(result.latencies)
    return Row(
        name="ceiling-etcd-put",
        description=f"etcd Put of {size} bytes, {writers} concurrent writers, grpc.aio",
        rate=summary.count / duration_s,
        p50_ms=summary.p50_ms,
        p99_ms=summary.p99_ms,
        count=summary.count,
        errors=result.errors,
        notes={"writers": writers, "value_bytes": size,
               **({"errors": result.error_samples} if result.error_samples else {})},
    )


# CREATE on etcd must keep at least this share of raw etcd puts at the same concurrency.
ETCD_CREATE_RATIO = 0.5


def _write_ceiling(ctx: BenchContext) -> Row | None:
    """The raw-storage ceiling of this run's backend."""
    name = "ceiling-etcd-put" if ctx.backend == "etcd" else "ceiling-sqlite-batch"
    return ctx.rows.get(name)


@scenario("create", description="CREATE ConfigMaps with unique names",
          requires=("ceiling-sqlite", "ceiling-etcd-put"))
def create(ctx: BenchContext) -> list[Row]:
    ctx.ensure_fixtures()  # the namespace must exist before the clock starts
    plan = RequestPlan("create", fixtures.configmaps_path(fixtures.CREATE_NAMESPACE),
                       body_template=fixtures.create_template(fixtures.CREATE_NAMESPACE))
    row = ctx.closed_loop(Measurement("create", "POST a new ConfigMap (unique name)",
                                      ctx.kplane, plan))
    row.compare_with(_write_ceiling(ctx))
    if ctx.backend == "etcd":
        row.judge(Target("ratio", ">=", ETCD_CREATE_RATIO))
    else:
        row.judge(Target("rate", ">=", 2000))
    return [row]


@scenario("create-cr", description="CREATE custom resources (schema with formats, enums, "
                                   "defaults, a list-map and two CEL rules), against the "
                                   "ConfigMap CREATE rate of the same run",
          requires=("create",), backends=("sqlite",))
def create_custom_resource(ctx: BenchContext) -> list[Row]:
    custom_resources.prepare(ctx.kplane)
    plan = RequestPlan("create", custom_resources.collection_path(),
                       body_template=custom_resources.create_template())
    row = ctx.closed_loop(Measurement(
        "create-cr", "POST a new custom resource (validated, defaulted, CEL)", ctx.kplane, plan))
    # The bar: custom-resource writes at least half the ConfigMap CREATE rate.
    row.compare_with(ctx.rows.get("create"))
    row.judge(Target("ratio", ">=", 0.5))
    return [row]


@scenario("update", description="UPDATE (PUT) ConfigMaps with the current resourceVersion",
          requires=("ceiling-sqlite", "ceiling-etcd-put"))
def update(ctx: BenchContext) -> list[Row]:
    ctx.ensure_fixtures()  # every connection's object must exist before the clock starts
    plan = RequestPlan("update", fixtures.configmaps_path(fixtures.UPDATE_NAMESPACE),
                       body_template=fixtures.update_template(fixtures.UPDATE_NAMESPACE),
                       name_prefix=fixtures.UPDATE_PREFIX)
    row = ctx.closed_loop(Measurement(
        "update", "PUT with resourceVersion, one object per connection", ctx.kplane, plan))
    row.compare_with(_write_ceiling(ctx))
    return [row]


# -- watch fan-out ----------------------------------------------------------------------------


@scenario("watch", description="watch fan-out: many watchers, one writer at a fixed rate")
def watch_fan_out(ctx: BenchContext) -> list[Row]:
    settings = ctx.settings
    ctx.ensure_fixtures()  # the namespace must exist before anyone watches it
    namespace = fixtures.WATCH_NAMESPACE
    version = fixtures.current_resource_version(ctx.kplane, namespace)
    writing_s = settings.watch_events / settings.watch_rate
    specs = [
        WatchSpec(
            endpoint=ctx.kplane,
            path=f"{fixtures.configmaps_path(namespace)}?watch=1&resourceVersion={version}",
            connections=count,
            expected_events=settings.watch_events,
            # Counted from when this process's watches are open; the others may still be
            # connecting, and the writer only starts once all are.
            deadline_s=settings.watch_connect_timeout_s + writing_s + settings.watch_grace_s,
        )
        for _, count in split_evenly(settings.watchers, settings.watch_processes)
    ]
    jobs = ctx.pool.start_watchers(specs)
    connected = ctx.pool.wait_until_watching(len(jobs),
                                             timeout=settings.watch_connect_timeout_s)
    writer = ctx.pool.submit(run_writer, WriterSpec(
        endpoint=ctx.kplane,
        path=fixtures.configmaps_path(namespace),
        body_template=fixtures.watch_writer_template(namespace),
        events=settings.watch_events,
        rate=settings.watch_rate,
        name_prefix="event-",
    ))
    written = writer.result()
    watched = [job.result() for job in jobs]
    return [_delivery_row(watched, written, watchers=settings.watchers, connected=connected),
            _writer_row(written)]


def _delivery_row(
    watched: list[WatchResult], written: WriterResult, *, watchers: int, connected: int
) -> Row:
    latencies = [sample for result in watched for sample in result.latencies]
    summary = summarize(latencies)
    last_receipt = max((result.last_receipt for result in watched), default=0.0)
    span = last_receipt - written.first_sent
    events = len(written.latencies)
    missing = sum(result.missing_events for result in watched)
    never_connected = watchers - connected
    row = Row(
        name="watch",
        description=f"{watchers} watchers, {events} events; latency from send to receipt",
        rate=summary.count / span if span > 0 else 0.0,
        p50_ms=summary.p50_ms,
        p99_ms=summary.p99_ms,
        count=summary.count,
        errors=missing + never_connected * events,
        notes={
            "watchers_connected": connected,
            "events_written": events,
            "deliveries_expected": connected * events,
            "missing_deliveries": missing,
            "max_ms": round(summary.max_ms, 3),
            **_error_samples(watched),
        },
    )
    row.judge(Target("p99_ms", "<=", 100))
    return row


def _error_samples(watched: list[WatchResult]) -> dict[str, list[str]]:
    samples = [sample for result in watched for sample in result.error_samples]
    return {"errors": samples} if samples else {}


def _writer_row(written: WriterResult) -> Row:
    summary = summarize(written.latencies)
    span = written.last_sent - written.first_sent
    events = len(written.latencies)
    return Row(
        name="watch-writer",
        description="the watch scenario's creates, while the fan-out runs",
        rate=(events - 1) / span if span > 0 else 0.0,
        p50_ms=summary.p50_ms,
        p99_ms=summary.p99_ms,
        count=events,
        errors=written.errors,
        notes={"errors": written.error_samples} if written.error_samples else {},
    )


# -- workspaces -------------------------------------------------------------------------------
# Each runs its own kplane (see bench.workspaces): memory, idle CPU and start-up time are
# read from /proc for that process, and must not include what earlier scenarios stored.


@scenario("workspaces", description="Workspaces: creation rate to Ready, memory per "
                                    "workspace, idle CPU with few and many workspaces",
          requires=("ceiling-sqlite",), backends=("sqlite",))
def workspaces(ctx: BenchContext) -> list[Row]:
    settings = ctx.settings
    server = ws.start_server(ctx, "workspaces")
    try:
        ws.create_baseline(ctx, server)
        held = settings.workspace_baseline
        idle_few = ws.idle_cpu_row(ctx, server, name="workspaces-idle-10", workspaces=held)
        created = _create_and_report(ctx, server, first=held + 1,
                                     count=settings.workspace_rate_count,
                                     name="workspaces-create")
        created.compare_with(ctx.rows.get("ceiling-sqlite-batch"))
        created.judge(Target("rate", ">=", ws.TARGET_CREATION_RATE))
        held += settings.workspace_rate_count
        # Measured from a warm server: the first creations load code paths and caches once.
        before = ws.read_memory(ctx, server, workspaces=held)
        grown = _create_and_report(ctx, server, first=held + 1,
                                   count=settings.workspace_memory_count,
                                   name="workspaces-grow")
        held += settings.workspace_memory_count
        memory = ws.memory_row(before, ws.read_memory(ctx, server, workspaces=held),
                               name="workspaces-memory")
        idle_many = ws.idle_cpu_row(ctx, server, name="workspaces-idle-grown",
                                    workspaces=held, baseline=idle_few)
    finally:
        server.process.stop()
    return [created, grown, memory, idle_few, idle_many]


@scenario("workspaces-100k", default=False,
          description="opt-in: grow one server to 100,000 workspaces; GET/LIST latency in "
                      "one of them against 10 workspaces, memory, idle CPU, restart time",
          requires=("ceiling-sqlite",), backends=("sqlite",))
def workspaces_at_scale(ctx: BenchContext) -> list[Row]:
    settings = ctx.settings
    name = "workspaces-100k"
    server = ws.start_server(ctx, name)
    try:
        ws.create_baseline(ctx, server)
        held = settings.workspace_baseline
        few = ws.probe_rows(ctx, server, prefix="ws100k", suffix="-10", workspaces=held)
        idle_few = ws.idle_cpu_row(ctx, server, name="ws100k-idle-10", workspaces=held)
        before = ws.read_memory(ctx, server, workspaces=held)
        grown = _create_and_report(ctx, server, first=held + 1,
                                   count=settings.workspace_scale_count - held,
                                   name="ws100k-grow")
        grown.compare_with(ctx.rows.get("ceiling-sqlite-batch"))
        grown.judge(Target("rate", ">=", ws.TARGET_CREATION_RATE))
        held = settings.workspace_scale_count
        memory = ws.memory_row(before, ws.read_memory(ctx, server, workspaces=held),
                               name="ws100k-memory")
        idle_many = ws.idle_cpu_row(ctx, server, name="ws100k-idle-grown", workspaces=held,
                                    baseline=idle_few)
        many = ws.probe_rows(ctx, server, prefix="ws100k", suffix="", workspaces=held,
                             baselines=few)
        server = ws.restart(ctx, server, name)
        startup = ws.startup_row(server, name="ws100k-startup", workspaces=held,
                                 served=ws.serves_workspace(server, held))
    finally:
        server.process.stop()
    return [few["get"], few["list"], grown, memory, idle_few, idle_many, many["get"],
            many["list"], startup]


@scenario("classes", description="kplane class: a class of 50 trainees with a 20-object "
                                 "template fully ready, and a reset of one trainee",
          backends=("sqlite",))
def training_classes(ctx: BenchContext) -> list[Row]:
    return training.class_rows(ctx)


def _create_and_report(
    ctx: BenchContext, server: ws.WorkspaceServer, *, first: int, count: int, name: str
) -> Row:
    result = ws.create_workspaces(ctx, server, first=first, count=count)
    connections = ctx.settings.workspace_connections
    return ws.creation_row(
        result, name=name, connections=connections,
        description=f"POST {count:,} Workspaces ({connections} connections); "
                    "latency from POST to Ready in a watch")
