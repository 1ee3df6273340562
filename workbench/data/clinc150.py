"""CLINC150: 10-domain and 150-intent routing views of the "full" release (no out-of-scope)."""

from __future__ import annotations

import json

import datasets as hf

from workbench.data import TaskData, data_file, fingerprint_files
from workbench.errors import UserError
from workbench.registry import dataset

_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def _load(view: str) -> TaskData:
    data_path = data_file("clinc150", "data_full.json")
    domains_path = data_file("clinc150", "domains.json")
    try:
        raw = json.loads(data_path.read_text(encoding="utf-8"))
        domains = json.loads(domains_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"not valid JSON: {exc}", file=str(data_path)) from None
    domain_of = {intent: domain for domain, intents in domains.items() for intent in intents}
    labels = sorted(domains) if view == "domains" else sorted(domain_of)
    splits = {}
    for split, key in _SPLITS.items():
        if key not in raw:
            raise UserError(f"split {key!r} is missing", file=str(data_path), field=key)
        rows = {"id": [], "text": [], "label": [], "intent": []}
        for i, (text, intent) in enumerate(raw[key]):
            if intent not in domain_of:
                raise UserError(f"item {i} has intent {intent!r} that no domain lists", file=str(data_path), field=key)
            rows["id"].append(f"{split}-{i}")
            rows["text"].append(text)
            rows["label"].append(domain_of[intent] if view == "domains" else intent)
            rows["intent"].append(intent)
        splits[split] = hf.Dataset.from_dict(rows)
    return TaskData(
        name=f"clinc150_{view}",
        splits=hf.DatasetDict(splits),
        input_fields=("text",),
        label_field="label",
        labels=labels,
        fingerprint=fingerprint_files(data_path, domains_path, extra=view),
    )


@dataset("clinc150_domains")
def clinc150_domains() -> TaskData:
    """10-way domain routing."""
    return _load("domains")


@dataset("clinc150_intents")
def clinc150_intents() -> TaskData:
    """150-way intent classification."""
    return _load("intents")
