"""BANKING77: 77-way intent routing; validation is a seeded hold-out of train."""

from __future__ import annotations

import json

import datasets as hf
import pandas as pd

from workbench.data import TaskData, data_file, fingerprint_files
from workbench.errors import UserError
from workbench.registry import dataset

HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 77


def _read(path, labels: set[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UserError(f"not a readable UTF-8 CSV: {exc}", file=str(path)) from None
    for column in ("text", "category"):
        if column not in frame.columns:
            raise UserError("missing column", file=str(path), field=column)
    unknown = set(frame["category"]) - labels
    if unknown:
        raise UserError(f"labels not in categories.json: {sorted(unknown)[:3]}", file=str(path), field="category")
    return frame


@dataset("banking77")
def banking77() -> TaskData:
    """77-way intent routing."""
    labels_path = data_file("banking77", "categories.json")
    train_path = data_file("banking77", "train.csv")
    test_path = data_file("banking77", "test.csv")
    labels = sorted(json.loads(labels_path.read_text(encoding="utf-8")))
    train = _read(train_path, set(labels))
    test = _read(test_path, set(labels))
    train["id"] = [f"train-{i}" for i in range(len(train))]
    test["id"] = [f"test-{i}" for i in range(len(test))]
    holdout = train.groupby("category", group_keys=False).sample(frac=HOLDOUT_FRACTION, random_state=HOLDOUT_SEED)
    splits = {
        "train": train.drop(holdout.index),
        "validation": holdout.sort_index(),
        "test": test,
    }
    out = {
        name: hf.Dataset.from_dict({"id": list(f["id"]), "text": list(f["text"]), "label": list(f["category"])})
        for name, f in splits.items()
    }
    return TaskData(
        name="banking77",
        splits=hf.DatasetDict(out),
        input_fields=("text",),
        label_field="label",
        labels=labels,
        fingerprint=fingerprint_files(labels_path, train_path, test_path),
    )
