"""Building the status: Ready transitions, kept fields, and writing only when it changes."""

from __future__ import annotations

from typing import Any

from kplane_postgres.status import build_status, differs, is_ready


def test_first_ready_status() -> None:
    instance: dict[str, Any] = {"metadata": {"generation": 3}}
    status = build_status(instance, ready=True, reason="Provisioned", message="ok",
                          database="db", username="u", secret_name="s")
    condition = status["conditions"][0]
    assert condition["type"] == "Ready" and condition["status"] == "True"
    assert condition["reason"] == "Provisioned" and condition["observedGeneration"] == 3
    assert condition["lastTransitionTime"].endswith("Z")
    assert status["observedGeneration"] == 3
    assert (status["database"], status["username"], status["secretName"]) == ("db", "u", "s")
    assert differs(instance, status)
    assert is_ready({"status": status})


def test_a_repeat_changes_nothing_and_needs_no_write() -> None:
    instance: dict[str, Any] = {"metadata": {"generation": 1}}
    instance["status"] = build_status(instance, ready=True, reason="Provisioned", message="ok",
                                      database="db", username="u", secret_name="s")
    instance["status"]["conditions"][0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    again = build_status(instance, ready=True, reason="Provisioned", message="ok",
                         database="db", username="u", secret_name="s")
    assert again["conditions"][0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert not differs(instance, again)
    # Fields the provider does not set do not force a write either.
    instance["status"]["somethingElse"] = 1
    assert not differs(instance, again)


def test_a_failure_keeps_where_the_database_is_and_moves_the_transition_time() -> None:
    instance: dict[str, Any] = {"metadata": {"generation": 2}, "status": {
        "database": "db", "username": "u", "secretName": "s",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned",
                        "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}
    failed = build_status(instance, ready=False, reason="DatabaseNameChanged", message="no")
    assert failed["database"] == "db" and failed["secretName"] == "s"
    condition = failed["conditions"][0]
    assert condition["status"] == "False" and condition["reason"] == "DatabaseNameChanged"
    assert condition["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert differs(instance, failed)
    assert not is_ready({"status": failed})
