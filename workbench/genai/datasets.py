"""The run's evaluation set as MLflow datasets.

Every run logs its evaluation examples as a dataset input (name `<dataset>.<split>`, digest
= the workbench's fingerprint of the evaluated ids, the dataset folder as source, context
= the split), so the run's Datasets column lists it and runs on the same items share a
digest. The experiment also gets one MLflow evaluation dataset per distinct set of items
(`<dataset>.<split>.<n>-<digest>`: its inputs and expected answers as records), created
the first time a run evaluates on it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def _frame(prepared) -> pd.DataFrame:
    data = prepared.data
    rows = []
    for example in prepared.evalset:
        row = {"id": str(example.get("id", "")), **{k: example.get(k) for k in data.input_fields}}
        if data.label_field:
            row[data.label_field] = _text(example.get(data.label_field))
        rows.append(row)
    return pd.DataFrame(rows)


def _text(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def dataset_name(prepared) -> str:
    return f"{prepared.data.name}.{prepared.spec.eval.split}"


def log_input(client, run_id: str, prepared, digest: str):
    """Log the evaluation set as the run's dataset input; returns (name, digest) for linking metrics."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    from workbench.data import datasets_dir

    frame = _frame(prepared)
    name = prepared.data.name
    candidates = (datasets_dir() / name, datasets_dir() / name.split("_")[0])  # clinc150_domains -> clinc150
    folder = next((f for f in candidates if f.is_dir()), datasets_dir())
    source = str(getattr(prepared.data, "source_path", None) or folder)
    dataset = mlflow.data.from_pandas(frame, source=source, name=dataset_name(prepared), digest=digest,
                                      targets=prepared.data.label_field if prepared.data.label_field in frame else None)
    tags = [InputTag("mlflow.data.context", prepared.spec.eval.split)]
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])
    return dataset.name, digest


def ensure_evaluation_dataset(experiment_id: str, prepared, digest: str) -> str | None:
    """The experiment's evaluation dataset for these items (created once); its id."""
    from mlflow.genai import datasets

    name = f"{dataset_name(prepared)}.{len(prepared.evalset)}-{digest[:8]}"
    found = datasets.search_datasets(experiment_ids=[experiment_id], filter_string=f"name = '{name}'", max_results=1)
    if found:
        return found[0].dataset_id
    data = prepared.data
    created = datasets.create_dataset(name=name, experiment_id=experiment_id,
                                      tags={"workbench.dataset": data.name, "workbench.split": prepared.spec.eval.split,
                                            "workbench.eval_fingerprint": digest,
                                            "workbench.dataset_fingerprint": data.fingerprint})
    records = []
    for example in prepared.evalset:
        record = {"inputs": {k: _text(example.get(k)) for k in data.input_fields},
                  "tags": {"workbench.example_id": str(example.get("id", ""))}}
        if data.label_field and example.get(data.label_field) is not None:
            record["expectations"] = {"expected_response": _text(example.get(data.label_field))}
        records.append(record)
    for start in range(0, len(records), 1000):
        created.merge_records(records[start:start + 1000])
    return created.dataset_id
