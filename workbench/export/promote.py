"""`workbench promote RUN --name NAME`: register a run's program in the MLflow Model Registry.

The run is exported and verified as a bundle, logged as a pyfunc model from code (no
pickle: see `mlflow_model.py`) inside a small `promote` run, and registered as a new
version of NAME. The `champion` alias moves to it only when it beats the current champion
on the same evaluation examples by the paired test of `workbench compare` (higher mean,
p < 0.05); otherwise it becomes the `challenger`. When it does win, the old champion
becomes the challenger. `force` moves the champion alias regardless and says so in tags.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from workbench.console import Reporter
from workbench.errors import UserError
from workbench.export.bundle import read_json
from workbench.spec import TrackingSpec
from workbench.tracking import default_uri, tracked_run

CHAMPION, CHALLENGER = "champion", "challenger"
RUN_TAG = "workbench.run_id"


@dataclass
class Promotion:
    name: str
    version: str
    alias: str  # champion | challenger
    reason: str
    previous_champion: str | None
    model_uri: str
    promote_run_id: str


def _champion(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _alias_prompts(client, run, alias: str) -> None:
    """The run's Prompt Registry versions (tag workbench.prompts) get the model's alias too."""
    from mlflow.exceptions import MlflowException

    from workbench.comparison.report import prompt_versions
    from workbench.genai.prompts import set_alias

    try:
        set_alias(client, prompt_versions(run.data.tags), alias)
    except MlflowException:  # a prompt deleted by hand: the model's alias still stands
        pass


def decide(client, champion_run_id: str, candidate_run_id: str, *, force: bool) -> tuple[bool, str]:
    """(candidate becomes champion?, why), by the paired test on the shared evaluation examples."""
    from workbench.comparison.report import aligned_scores
    from workbench.comparison.runs import load_run
    from workbench.comparison.stats import paired_test

    champion = load_run(client, client.get_run(champion_run_id))
    candidate = load_run(client, client.get_run(candidate_run_id))
    try:
        a, b = aligned_scores(champion, candidate)
    except UserError:
        if force:
            return True, "forced: the runs were evaluated on different examples, no paired test possible"
        raise UserError(f"run {candidate_run_id[:12]} and the champion's run {champion_run_id[:12]} were evaluated on "
                        "different examples, so the paired test cannot decide; evaluate both on the same split, or "
                        "pass --force", field="RUN") from None
    result = paired_test(a.to_numpy(), b.to_numpy())
    summary = (f"{result.mean_b:.4f} vs champion {result.mean_a:.4f} on {result.n} examples, difference "
               f"{result.difference:+.4f} [{result.ci[0]:+.4f}, {result.ci[1]:+.4f}], {result.test} p={result.p_value:.3g}")
    wins = result.difference > 0 and result.significant
    if wins:
        return True, f"beats the champion: {summary}"
    if force:
        return True, f"forced (the paired test did not show it better): {summary}"
    return False, f"does not beat the champion: {summary}"


def promote(ref: str, name: str, *, force: bool = False, tracking_uri: str | None = None,
            reporter: Reporter | None = None) -> Promotion:
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from workbench.comparison.runs import client_for
    from workbench.export.exporter import export_run, find_run

    reporter = reporter or Reporter(quiet=True)
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UserError(f"model names are letters, digits, '-', '_' and '.', got {name!r}", field="--name")
    tracking_uri = tracking_uri or default_uri()  # flag > environment > default
    client = client_for(tracking_uri)
    run = find_run(client, ref)
    run_id = run.info.run_id
    current = _champion(client, name)
    if current is not None and current.tags.get(RUN_TAG) == run_id:
        raise UserError(f"run {run_id[:12]} is already the champion of {name} (version {current.version})", field="RUN")
    becomes_champion, reason = (True, "first version: no champion yet") if current is None else \
        decide(client, current.tags[RUN_TAG], run_id, force=force)
    with tempfile.TemporaryDirectory(prefix="workbench-promote-") as tmp:
        bundle = Path(tmp) / "bundle"
        export_run(run_id, bundle, tracking_uri=tracking_uri, reporter=reporter)
        config = read_json(bundle, "program_config.json")
        report = read_json(bundle, "report.json")
        signature = ModelSignature(inputs=Schema([ColSpec("string", n) for n in config["inputs"]]))
        tags = {"workbench.source_run": run_id, "workbench.model": name,
                "workbench.decision": CHAMPION if becomes_champion else CHALLENGER,
                "workbench.forced": str(bool(force and becomes_champion and current is not None)).lower()}
        experiment = client.get_experiment(run.info.experiment_id).name
        with tracked_run(TrackingSpec(uri=tracking_uri), kind="promote", experiment=experiment,
                         run_name=f"promote-{name}", tags=tags) as promo:
            mlflow.log_metrics({"score": report["score"], "verified_score": report["verified_score"]})
            mlflow.log_text(reason, "decision.txt")
            with warnings.catch_warnings():  # no type hints / input example: the signature says it all
                warnings.simplefilter("ignore", UserWarning)
                info = mlflow.pyfunc.log_model(name="model", python_model=str(Path(__file__).with_name("mlflow_model.py")),
                                               artifacts={"bundle": str(bundle)}, signature=signature,
                                               pip_requirements=["dspy-workbench"], registered_model_name=name)
    version = str(info.registered_model_version)
    version_tags = {RUN_TAG: run_id, "workbench.score": f"{report['score']:.4f}", "workbench.n": str(report["n"]),
                    "workbench.decision": reason, "workbench.forced": tags["workbench.forced"]}
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, value)
    if becomes_champion:
        if current is not None:
            client.set_registered_model_alias(name, CHALLENGER, current.version)
            _alias_prompts(client, client.get_run(current.tags[RUN_TAG]), CHALLENGER)
        client.set_registered_model_alias(name, CHAMPION, version)
    else:
        client.set_registered_model_alias(name, CHALLENGER, version)
    _alias_prompts(client, run, CHAMPION if becomes_champion else CHALLENGER)
    return Promotion(name, version, CHAMPION if becomes_champion else CHALLENGER, reason,
                     current.version if current is not None else None, f"models:/{name}@{CHAMPION}",
                     promo.run_id)
