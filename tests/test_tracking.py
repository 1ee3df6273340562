"""The MLflow gateway: one module opens clients and runs, each bound to the store it was
given, so a store another command (or the environment) made the default is never written."""

from __future__ import annotations

import re

from tests.comparison.test_compare import _log
from tests.conftest import ROOT, Store
from workbench.cli import main


def test_only_tracking_opens_clients_and_runs():
    offenders = []
    for path in sorted((ROOT / "workbench").rglob("*.py")):
        if path.name == "tracking.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (r"MlflowClient\(", r"\.create_run\(", r"mlflow\.start_run\(", r"sqlite:///mlruns/mlflow\.db"):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert offenders == []


def test_commands_use_the_store_they_are_given_not_the_environments(store, tmp_path, monkeypatch, capsys):
    other = Store(tmp_path / "other")  # what MLflow's globals point at, as after another command in this process
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other.uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", other.uri)
    base = _log(store, "base", [1.0] * 20)
    worse = _log(store, "worse", [1.0] * 10 + [0.0] * 10)
    assert main(["compare", base, worse, "--tracking-uri", store.uri, "--out", str(tmp_path / "cmp")]) == 0
    assert main(["gate", worse, "--against", base, "--tracking-uri", store.uri, "--quiet"]) == 1
    kinds = {store.client().get_run(r["run_id"]).data.tags["workbench.kind"] for r in store.runs()}
    assert kinds == {"run", "comparison"} and other.runs() == []
    assert "gate=failed" in capsys.readouterr().out
