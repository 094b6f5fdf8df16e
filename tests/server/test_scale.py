"""The Scale view of custom resources: what a written Scale may ask for."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.server.scale import replicas_from, scale_of


def scale(replicas: Any, name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name},
            "spec": {"replicas": replicas}}


def test_the_replica_count_is_read() -> None:
    assert replicas_from(scale(3), name="web") == 3
    assert replicas_from({"spec": {"replicas": 0}}, name="web") == 0


@pytest.mark.parametrize(("body", "code", "message"), [
    (scale(3, name="other"), 400,
     "the name of the object (other) does not match the name on the URL (web)"),
    (scale(2**31), 400, "json: cannot unmarshal number 2147483648 into Go struct field "
                        "ScaleSpec.spec.replicas of type int32"),
    (scale(-1), 422, "must be greater than or equal to 0"),
    (scale("3"), 422, "must be greater than or equal to 0"),
    ({"kind": "Deployment"}, 400, "the body must be an autoscaling/v1 Scale"),
])
def test_bad_scales_are_refused(body: dict[str, Any], code: int, message: str) -> None:
    with pytest.raises(StatusError) as refused:
        replicas_from(body, name="web")
    assert refused.value.code == code
    assert message in str(refused.value.to_status())


def test_a_scale_is_built_from_the_configured_paths() -> None:
    obj = {"metadata": {"name": "web", "uid": "u"}, "spec": {"size": 4},
           "status": {"ready": 2, "sel": "app=web"}}
    view = scale_of(obj, {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.ready",
                          "labelSelectorPath": ".status.sel"})
    assert view["spec"] == {"replicas": 4}
    assert view["status"] == {"replicas": 2, "selector": "app=web"}
