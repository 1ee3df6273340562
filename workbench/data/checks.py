"""What a practitioner checks in a dataset before spending LM calls on it.

`check(data, eval_split)` looks at the splits a run will use (after sampling): rows per
split, rows the loader dropped for an empty input or label, labels with fewer than two
training rows, labels the evaluation has but train lacks, label imbalance, and evaluation
inputs that also occur, exactly, in train (leakage: a demo can be the answer itself).
The run prints the warnings before it starts and logs the whole report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.data import TaskData

IMBALANCE_WARNING = 10.0  # most common / least common training label


@dataclass
class DataChecks:
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        r = self.report
        out = {"data.rows_dropped": float(sum(r["dropped"].values())),
               "data.leaked_eval_inputs": float(r["leakage"]["eval_in_train"])}
        if "labels" in r:
            out["data.labels"] = float(len(r["labels"]["train_counts"]))
            out["data.labels_under_2_train"] = float(len(r["labels"]["under_2_train"]))
            out["data.imbalance_ratio"] = float(r["labels"]["imbalance_ratio"])
        return out


def _column(split, name: str) -> pa.ChunkedArray:
    from workbench.data.files import arrow_column

    return pc.utf8_trim_whitespace(pc.cast(arrow_column(split, name), pa.string()))


def _leaked(train, other, name: str) -> int:
    if len(train) == 0 or len(other) == 0:
        return 0
    return int(pc.sum(pc.is_in(_column(other, name), value_set=pc.unique(_column(train, name))))
               .as_py() or 0)


def check(data: TaskData, eval_split: str = "test") -> DataChecks:
    splits = data.splits
    name = data.input_fields[0]
    evaluated = "test" if eval_split == "test" else "validation"
    report: dict[str, Any] = {
        "dataset": data.name, "fingerprint": data.fingerprint,
        "rows": {s: len(splits[s]) for s in splits},
        "dropped": dict(data.stats.get("dropped", {})),
        "carved": dict(data.stats.get("carved", {})),
        "leakage": {"input": name, "eval_split": eval_split,
                    "eval_in_train": _leaked(splits["train"], splits[evaluated], name),
                    "dev_in_train": _leaked(splits["train"], splits["validation"], name) if evaluated != "validation" else 0},
    }
    warnings = []
    dropped = sum(report["dropped"].values())
    if dropped:
        where = ", ".join(f"{k} {v}" for k, v in report["dropped"].items())
        warnings.append(f"{dropped} rows dropped for an empty input or label ({where})")
    leaked = report["leakage"]["eval_in_train"]
    if leaked:
        warnings.append(f"{leaked} of {len(splits[evaluated])} {eval_split} inputs also occur in train, word for word "
                        "(leakage: retrieved demos can carry the answer)")
    if data.labels and data.label_field in splits["train"].column_names:
        train_labels = _column(splits["train"], data.label_field).to_numpy(zero_copy_only=False).astype(str)
        eval_labels = set(_column(splits[evaluated], data.label_field).to_numpy(zero_copy_only=False).astype(str))
        values, counts = np.unique(train_labels, return_counts=True)
        train_counts = {str(v): int(c) for v, c in sorted(zip(values, counts), key=lambda vc: -vc[1])}
        under = sorted(label for label in data.labels if train_counts.get(label, 0) < 2)
        unseen = sorted(eval_labels - set(train_counts))
        ratio = float(counts.max() / counts.min()) if len(counts) else 0.0
        report["labels"] = {"labels": list(data.labels), "train_counts": train_counts, "under_2_train": under,
                            "eval_not_in_train": unseen, "imbalance_ratio": ratio,
                            "majority_share": float(counts.max() / counts.sum()) if len(counts) else 0.0}
        if under:
            warnings.append(f"{len(under)} labels have fewer than 2 training rows ({', '.join(under[:5])}"
                            f"{', ...' if len(under) > 5 else ''}): too few to learn or to show as demos")
        if unseen:
            warnings.append(f"{len(unseen)} {eval_split} labels never occur in train ({', '.join(unseen[:5])})")
        if ratio >= IMBALANCE_WARNING:
            top = next(iter(train_counts))
            warnings.append(f"labels are imbalanced: {top!r} has {ratio:.0f}x the rows of the rarest label "
                            f"({report['labels']['majority_share']:.0%} of train); watch macro-F1, not only accuracy")
    return DataChecks(report, warnings)
