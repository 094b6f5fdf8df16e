"""The ``kplane class`` scenario: how long a whole class takes to be ready for its trainees.

The issue's promise is wall-clock time: 50 trainees with a 20-object template are ready
(workspaces Ready, template applied, quota set, kubeconfigs written) in under 5 seconds.
The trainer's side runs here in the orchestrator, exactly as ``kplane class create`` runs
it (same thread pool, same connections), against a kplane of its own on a fresh data
directory, so earlier scenarios' objects and load do not count. A reset of one trainee
(promised in under a second) is measured on the same class.
"""

from __future__ import annotations

import time
from datetime import timedelta

from bench.context import BenchContext
from bench.report import Row, Target
from bench.workspaces import start_server
from kplane.cli import classes

TRAINEES = 50
TEMPLATE_OBJECTS = 20
MAX_OBJECTS = 500
TARGET_CREATE_S = 5.0
TARGET_RESET_S = 1.0


def template_objects(count: int) -> list[dict[str, object]]:
    """``count`` small ConfigMaps: the shape of a typical exercise's starting point."""
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"exercise-{i}"},
             "data": {"step": str(i), "hint": "kubectl describe it"}} for i in range(count)]


def class_rows(ctx: BenchContext) -> list[Row]:
    server = start_server(ctx, "classes")
    try:
        trainer = classes.Trainer.from_kubeconfig(str(server.data_dir / "admin.kubeconfig"),
                                                  data_dir=server.data_dir)
        try:
            return [_create_row(ctx, trainer), _reset_row(trainer)]
        finally:
            trainer.close()
    finally:
        server.process.stop()


def _create_row(ctx: BenchContext, trainer: classes.Trainer) -> Row:
    options = classes.CreateOptions(
        class_name="bench", trainees=classes.trainee_names(count=TRAINEES, names_file=None),
        objects=template_objects(TEMPLATE_OBJECTS), expires_in=timedelta(hours=1),
        max_objects=MAX_OBJECTS, out_dir=ctx.workdir / "class-kubeconfigs")
    report = classes.create_class(trainer, options)
    written = sum(1 for result in report.results if result.kubeconfig is not None)
    requests = 2 + TRAINEES * (TEMPLATE_OBJECTS + 3)
    row = Row(name="class-create",
              description=f"kplane class create: {TRAINEES} trainees, {TEMPLATE_OBJECTS}-object "
                          "template, until every workspace is set up and kubeconfig written",
              rate=0.0, p50_ms=0.0, p99_ms=0.0, count=written,
              errors=TRAINEES - written, value=report.seconds, unit="s",
              notes={"trainees": TRAINEES, "template_objects": TEMPLATE_OBJECTS,
                     "workers": trainer.workers, "writes_at_least": requests,
                     "writes_per_s": round(requests / report.seconds, 1)})
    row.judge(Target("value", "<=", TARGET_CREATE_S))
    return row


def _reset_row(trainer: classes.Trainer) -> Row:
    started = time.monotonic()
    classes.reset_trainees(trainer, class_name="bench", trainees=["trainee-01"])
    elapsed = time.monotonic() - started
    row = Row(name="class-reset",
              description=f"kplane class reset of one trainee ({TEMPLATE_OBJECTS}-object "
                          "template): delete, recreate, bind, apply, quota",
              rate=0.0, p50_ms=0.0, p99_ms=0.0, count=1, value=elapsed, unit="s")
    row.judge(Target("value", "<=", TARGET_RESET_S))
    return row
