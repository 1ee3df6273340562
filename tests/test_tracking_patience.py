"""A tracking server that is briefly away costs a run nothing: the workbench's client waits it
out (bounded), whatever MLflow's own HTTP retry settings say; one away for longer ends the
command with one line naming the server."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from workbench import tracking
from workbench.errors import UserError


class Flaky:
    tracking_uri = "http://127.0.0.1:9"

    def __init__(self, failures: int, message: str):
        self.failures, self.message, self.calls = failures, message, 0

    def log_batch(self, run_id, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise MlflowException(self.message)
        return run_id


REFUSED = "API request to http://127.0.0.1:9/api/2.0/mlflow/runs/log-batch failed with exception Connection refused"


def test_connection_failures_are_retried_until_the_server_answers(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    inner = Flaky(3, REFUSED)
    assert tracking.PatientClient(inner).log_batch("r1", metrics=[]) == "r1"
    assert inner.calls == 4


def test_a_bad_request_is_not_retried(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    inner = Flaky(1, "RESOURCE_DOES_NOT_EXIST: run r1 not found")
    with pytest.raises(MlflowException, match="not found"):
        tracking.PatientClient(inner).log_batch("r1")
    assert inner.calls == 1


def test_a_server_away_past_the_patience_is_one_line_naming_it(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("time.sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    monkeypatch.setattr("time.monotonic", lambda: clock[0])
    inner = Flaky(10**6, REFUSED)
    with pytest.raises(UserError, match=r"tracking server http://127.0.0.1:9 did not answer for 60 s \(log_batch\)"):
        tracking.PatientClient(inner).log_batch("r1")
    assert 55 <= clock[0] <= 60 and inner.calls < 15  # backed off, not hammered


def test_only_server_stores_get_the_patient_client(tmp_path):
    assert not isinstance(tracking.client(f"sqlite:///{tmp_path}/m.db"), tracking.PatientClient)
    patient = tracking.client("http://127.0.0.1:9")
    assert isinstance(patient, tracking.PatientClient) and patient.tracking_uri == "http://127.0.0.1:9"
