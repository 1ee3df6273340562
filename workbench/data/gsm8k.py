"""GSM8K grade-school math: 7,473 train / 1,319 test word problems with numeric answers.

The final number after `####` is the answer (commas removed); the worked solution is kept
as `solution` (with its `<<a*b=c>>` calculator annotations) for demos. A seeded 200 of the
train problems form the dev split.
"""

from __future__ import annotations

import json
import random

import datasets as hf

from workbench.data import TaskData, data_file, fingerprint_files
from workbench.errors import UserError
from workbench.registry import dataset

DEV_SIZE = 200
DEV_SEED = 11


def _rows(path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            solution, _, final = record["answer"].rpartition("####")
        except (json.JSONDecodeError, KeyError, AttributeError):
            raise UserError(f"line {number} is not a GSM8K record", file=str(path), field=f"line {number}") from None
        rows.append({"id": f"{path.stem}_{number}", "question": record["question"],
                     "answer": final.strip().replace(",", ""), "solution": solution.strip()})
    return rows


@dataset("gsm8k")
def gsm8k() -> TaskData:
    """Math word problems; the answer is one number."""
    train_path, test_path = data_file("gsm8k", "train.jsonl"), data_file("gsm8k", "test.jsonl")
    train = _rows(train_path)
    order = list(range(len(train)))
    random.Random(DEV_SEED).shuffle(order)
    dev = set(order[:DEV_SIZE])
    columns = ("id", "question", "answer", "solution")

    def table(items):
        return hf.Dataset.from_dict({c: [r[c] for r in items] for c in columns})

    splits = hf.DatasetDict({"train": table([r for i, r in enumerate(train) if i not in dev]),
                             "validation": table([r for i, r in enumerate(train) if i in dev]),
                             "test": table(_rows(test_path))})
    return TaskData(name="gsm8k", splits=splits, input_fields=("question",), label_field="answer", labels=[],
                    fingerprint=fingerprint_files(train_path, test_path, extra=str(DEV_SEED)))
