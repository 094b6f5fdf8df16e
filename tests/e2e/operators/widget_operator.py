"""A kopf operator for ``Widget`` custom resources, run as its own process by the e2e tests.

It proves that a real operator framework can list, watch and patch custom resources of a
kplane workspace: for every Widget it writes ``status.phase`` and ``status.observedSize``
(through the status subresource, as kopf does when the CRD declares one), and keeps them
current when the spec changes.
"""

from __future__ import annotations

from typing import Any

import kopf

GROUP = "example.kplane.io"


@kopf.on.startup()  # type: ignore[arg-type]
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress goes to annotations so the CRD's status schema stays the operator's own.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()
    settings.posting.enabled = False
    settings.watching.server_timeout = 10


@kopf.on.create(GROUP, "v1", "widgets")  # type: ignore[arg-type]
@kopf.on.update(GROUP, "v1", "widgets")  # type: ignore[arg-type]
@kopf.on.resume(GROUP, "v1", "widgets")  # type: ignore[arg-type]
def reconcile(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
    size = int(spec.get("size", 0))
    patch.status["phase"] = "Reconciled"
    patch.status["observedSize"] = size
    patch.status["message"] = f"{size} parts assembled"
