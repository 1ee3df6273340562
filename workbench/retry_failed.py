"""`workbench eval --retry-failed RUN`: pay only for the examples a flaky endpoint lost.

Reads RUN's spec, program and per-example table from MLflow; re-runs the examples whose LM
call failed after its retries (`error_type == "lm_error"`) and those a stopped run never
reached, with RUN's compiled program; and logs a new `eval` run whose table is RUN's other
rows (right, wrong or unparsed answers stay as they were: they are the model's) with the
re-run rows laid over them, tagged `workbench.retry_of`. The new run's score, CI and n are
over the whole evaluation set, so it compares with RUN's siblings like any run.
"""

from __future__ import annotations

import json
from pathlib import Path

from workbench.console import Reporter
from workbench.errors import UserError

RETRY_TAG = "workbench.retry_of"


def retry_failed(ref: str, *, tracking_uri: str, overrides: list[str], reporter: Reporter):
    import tempfile

    import pandas as pd

    from workbench.comparison.runs import client_for, resolve
    from workbench.spec import apply_overrides, validate

    client = client_for(tracking_uri)
    runs = resolve(client, [ref])
    if len(runs) != 1:
        raise UserError(f"{ref!r} names {len(runs)} runs; give one run id", field="--retry-failed")
    run = runs[0]
    run_id = run.info.run_id
    if run.info.status == "RUNNING":
        raise UserError(f"run {run_id} is still RUNNING; retry its failures when it has ended", field="--retry-failed")
    folder = Path(tempfile.mkdtemp(prefix="workbench-retry-"))
    files = {}
    for name in ("spec.json", "program.json", "predictions.json"):
        try:
            files[name] = Path(client.download_artifacts(run_id, name, str(folder)))
        except Exception:  # noqa: BLE001  MLflow raises several kinds for a missing artifact
            raise UserError(f"run {run_id} has no {name}; only workbench runs that evaluated can be retried",
                            field="--retry-failed") from None
    source = f"run {run_id[:12]} spec.json"
    data = json.loads(files["spec.json"].read_text(encoding="utf-8"))
    if (data.get("lm") or {}).get("lora"):  # the run's fine-tuned adapter, as it logged it
        from workbench.finetune.gguf_lora import run_adapter

        data["lm"]["lora"] = run_adapter(client, run_id, data["lm"]["lora"], folder)
    data = apply_overrides(data, [*overrides, f"tracking.uri={tracking_uri}"])
    spec = validate(data, source)
    table = json.loads(files["predictions.json"].read_text(encoding="utf-8"))
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    frame["id"] = frame["id"].astype(str)

    from workbench.data.loading import load_data
    from workbench.lm.preflight import preflight

    preflight(spec)
    loaded = load_data(spec)
    split = "test" if spec.eval.split == "test" else "validation"
    order = [str(i) for i in loaded.data.splits[split]["id"]]
    failed = set(frame.loc[frame["error_type"] == "lm_error", "id"])
    missing = set(order) - set(frame["id"])
    todo = failed | missing
    if not todo:
        raise UserError(f"run {run_id} lost no examples to LM call failures (parse errors and wrong answers are "
                        "the model's and are not re-run)", field="--retry-failed")
    if not set(frame["id"]) <= set(order):
        raise UserError(f"run {run_id}'s examples are not this spec's evaluation items (the data changed?)",
                        field="--retry-failed")
    reporter.info(f"retrying {len(failed)} examples lost to LM call failures"
                  + (f" and {len(missing)} never reached" if missing else "")
                  + f" of run {run_id[:12]}; keeping its other {len(frame) - len(failed)} rows")

    from workbench.runner import RunHooks, Subset, run as run_spec

    kept = frame[~frame["id"].isin(todo)]
    outcome = run_spec(spec, reporter=reporter, program_path=files["program.json"], loaded=loaded,
                       hooks=RunHooks(tags={RETRY_TAG: run_id}), subset=Subset(todo, kept, order))
    return outcome, spec
