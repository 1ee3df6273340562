"""Finished evaluation runs read back from MLflow: metrics, tags, the per-example table and
the compiled program's state — everything a comparison needs, with one clear error for
each way a reference can be wrong (unknown, still running, no per-example table, ...)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.errors import UserError
from workbench.tracking import RUN_KIND_TAG

COMPARABLE_KINDS = ("run", "eval", "")  # not comparison reports or sweep parents


@dataclass
class RunData:
    run_id: str
    name: str
    experiment: str
    status: str
    metrics: dict[str, float]
    tags: dict[str, str]
    params: dict[str, str]
    table: pd.DataFrame
    state: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        partial = f", partial: {int(self.metrics.get('n_examples', len(self.table)))} of " \
                  f"{int(self.metrics['planned_n_examples'])}" if "planned_n_examples" in self.metrics else ""
        return f"{self.name or self.run_id[:8]} ({self.run_id[:8]}{partial})"

    @property
    def task(self) -> str:
        return self.tags.get("workbench.task", "")

    def scores(self) -> pd.Series:
        return self.table.set_index(self.table["id"].astype(str))["score"].astype(float)


def client_for(tracking_uri: str):
    """A client for a store that must already hold runs (reading commands)."""
    from workbench.tracking import client

    return client(tracking_uri, must_exist=True)


def _read_json_artifact(client, run_id: str, path: str):
    import mlflow.exceptions

    try:
        local = client.download_artifacts(run_id, path)
    except (mlflow.exceptions.MlflowException, OSError):
        return None
    return json.loads(Path(local).read_text(encoding="utf-8"))


def load_run(client, run) -> RunData:
    info = run.info
    if info.status == "RUNNING":
        raise UserError(f"run {info.run_id} is still RUNNING; compare it when it has finished", field="runs")
    table = _read_json_artifact(client, info.run_id, "predictions.json")
    if not table or "columns" not in table:
        raise UserError(f"run {info.run_id} has no per-example table (predictions.json); was it evaluated?",
                        field="runs")
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    experiment = client.get_experiment(info.experiment_id).name
    return RunData(run_id=info.run_id, name=info.run_name or "", experiment=experiment, status=info.status,
                   metrics=dict(run.data.metrics), tags=dict(run.data.tags), params=dict(run.data.params),
                   table=frame, state=_read_json_artifact(client, info.run_id, "program.json") or {})


def resolve(client, refs: list[str]) -> list:
    """MLflow runs for each reference: a run id (or a unique prefix of 8+ characters), or an
    experiment name (its finished evaluation runs, oldest first: the first is the baseline), or a
    run's logged model `models:/m-<id>` (the run that produced it)."""
    import mlflow.exceptions

    from workbench.genai.models import is_logged_model_uri, source_run

    found, seen = [], set()
    experiments = {e.name: e for e in client.search_experiments()}
    for ref in refs:
        if is_logged_model_uri(ref):
            ref = source_run(client, ref)
        if ref in experiments:
            runs = client.search_runs([experiments[ref].experiment_id], "attributes.status = 'FINISHED'",
                                      order_by=["attributes.start_time ASC"])
            # a `--folds` run counts as its pooled parent: its folds' children each hold one part of the items
            pooled = {r.info.run_id for r in runs if r.data.tags.get(RUN_KIND_TAG) == "cross_fitted"}
            runs = [r for r in runs if (r.data.tags.get(RUN_KIND_TAG, "") in COMPARABLE_KINDS
                                        and r.data.tags.get("mlflow.parentRunId") not in pooled
                                        or r.info.run_id in pooled)
                    and "predictions.json" in {a.path for a in client.list_artifacts(r.info.run_id)}]
            if not runs:
                raise UserError(f"experiment {ref!r} has no finished evaluation runs", field="runs")
        else:
            try:
                runs = [client.get_run(ref)]
            except mlflow.exceptions.MlflowException:
                runs = _by_prefix(client, experiments.values(), ref)
        for run in runs:
            if run.info.run_id not in seen:
                seen.add(run.info.run_id)
                found.append(run)
    return found


def _by_prefix(client, experiments, prefix: str) -> list:
    if len(prefix) < 8:
        raise UserError(f"{prefix!r} is neither an experiment nor a run id (ids need 8+ characters)", field="runs")
    ids = [e.experiment_id for e in experiments]
    matches = [r for r in client.search_runs(ids, max_results=50000) if r.info.run_id.startswith(prefix)] if ids else []
    if not matches:
        store = getattr(client, "tracking_uri", None) or getattr(getattr(client, "_inner", None), "tracking_uri", "")
        raise UserError(f"{prefix!r} is neither an experiment nor a run id in {store or 'this store'} "
                        "(another store: --tracking-uri or $MLFLOW_TRACKING_URI)", field="runs")
    if len(matches) > 1:
        raise UserError(f"{len(matches)} runs have ids starting {prefix!r}; give more characters", field="runs")
    return matches


def load_runs(refs: list[str], tracking_uri: str) -> list[RunData]:
    client = client_for(tracking_uri)
    runs = [load_run(client, r) for r in resolve(client, refs)]
    if len(runs) < 2:
        raise UserError("a comparison needs at least two finished runs (got one)", field="runs")
    tasks = {r.task for r in runs}
    if len(tasks) > 1:
        raise UserError(f"runs from different tasks ({', '.join(sorted(tasks))}) cannot be compared", field="runs")
    return runs
