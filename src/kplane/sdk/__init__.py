"""What a provider author imports to serve an API exported from kplane.

``kplane.sdk`` talks to kplane only over HTTP (it imports no other kplane package), with
the credentials of a kubeconfig: an async cluster-aware ``Client``, ``Informer``s that keep a
local copy of objects across logical clusters, a ``Controller`` that turns their events into
deduplicated, retried reconciles, and finalizer helpers. See docs/sdk.md.
"""

from kplane.sdk.client import Client
from kplane.sdk.controller import Controller, Reconcile, Result
from kplane.sdk.errors import ApiError, Conflict, Gone, NotFound, TransportError
from kplane.sdk.finalizers import ensure_finalizer, remove_finalizer
from kplane.sdk.informer import Informer
from kplane.sdk.kubeconfig import Kubeconfig, KubeconfigError
from kplane.sdk.resource import CLUSTER_ANNOTATION, ObjectKey, Resource, cluster_of
from kplane.sdk.workqueue import WorkQueue

__all__ = [
    "CLUSTER_ANNOTATION",
    "ApiError",
    "Client",
    "Conflict",
    "Controller",
    "Gone",
    "Informer",
    "Kubeconfig",
    "KubeconfigError",
    "NotFound",
    "ObjectKey",
    "Reconcile",
    "Resource",
    "Result",
    "TransportError",
    "WorkQueue",
    "cluster_of",
    "ensure_finalizer",
    "remove_finalizer",
]
