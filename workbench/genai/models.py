"""The compiled program as an MLflow LoggedModel.

Created (PENDING) once the program is compiled, so the evaluation's traces and metrics
link to it; at the end of the run its artifacts are the bundle files (program state,
config, signatures, prompts, manifest: no pickle) and it is finalized READY (FAILED if
the run failed). `models:/m-<id>` then works with `workbench export` (the model's
source run, verified) and `workbench serve` (the model's own bundle files).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

MODEL_TYPE = "dspy-workbench-program"


def create(client, experiment_id: str, run_id: str, spec, program) -> str:
    params = {"program": spec.program.name, "optimizer": spec.optimizer.name, "lm": spec.lm.model,
              "metric": spec.metric.name}
    model = client.create_logged_model(experiment_id, name=spec.name, source_run_id=run_id, model_type=MODEL_TYPE,
                                       params={k: str(v)[:500] for k, v in params.items()},
                                       tags={"workbench.program_class": type(program).__name__})
    return model.model_id


LOGGED_CORPUS_LIMIT = 50_000_000


def finish(client, model_id: str, run, prepared, program, *, failed: bool) -> None:
    """Upload the bundle files (when the program can be exported) and finalize the model."""
    from mlflow.entities import LoggedModelStatus

    from workbench import program_contract as contract
    from workbench.export.bundle import write_json, write_manifest
    from workbench.errors import UserError
    from workbench.export.exporter import _write_files

    if not failed and contract.is_exportable(program):
        with tempfile.TemporaryDirectory(prefix="workbench-model-") as tmp:
            folder = Path(tmp)
            try:  # a RAG corpus over 50 MB is left to `workbench export` (each run would copy it)
                _write_files(folder, client, run, prepared, program, LOGGED_CORPUS_LIMIT)
            except UserError as exc:
                client.set_logged_model_tags(model_id, {"workbench.bundle": f"not attached: {exc}"[:500]})
                client.finalize_logged_model(model_id, LoggedModelStatus.READY)
                return
            metrics = run.data.metrics
            write_json(folder / "report.json", {"metric": prepared.spec.metric.name, "split": prepared.spec.eval.split,
                                                "score": metrics.get("score"), "n": int(metrics.get("n_examples", 0)),
                                                "verified_score": None, "source_run": run.info.run_id})
            experiment = client.get_experiment(run.info.experiment_id).name
            program_class = f"{type(program).__module__}.{type(program).__name__}"
            write_manifest(folder, run_id=run.info.run_id, experiment=experiment, program_class=program_class,
                           dataset={"name": prepared.data.name, "fingerprint": prepared.data.fingerprint})
            client.log_model_artifacts(model_id, str(folder))
    client.finalize_logged_model(model_id, LoggedModelStatus.FAILED if failed else LoggedModelStatus.READY)


def source_run(client, uri: str) -> str:
    """The run that produced logged model `models:/m-<id>`."""
    from mlflow.exceptions import MlflowException

    from workbench.errors import UserError

    model_id = uri.removeprefix("models:/")
    try:
        model = client.get_logged_model(model_id)
    except MlflowException as exc:
        raise UserError(f"no logged model {model_id}: {exc.message.splitlines()[0]}", field="RUN") from None
    if not model.source_run_id:
        raise UserError(f"logged model {model_id} has no source run", field="RUN")
    return model.source_run_id


def is_logged_model_uri(ref: str) -> bool:
    return ref.startswith("models:/m-")
