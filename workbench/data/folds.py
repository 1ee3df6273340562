"""Cross-fitting any dataset: `dataset.fold: "i/k"` scores the i-th of k seeded parts of the test split
with a program trained on the train split plus the other k-1 parts.

The k runs of one k (`workbench run SPEC --folds k` makes them) score every test item exactly once, each
by a program that never saw it, while every program learns from items like the ones it is scored on. A
team with a few hundred labelled examples of its own task gets a score over all of them instead of over
a small held-out remainder. Training rows whose inputs are a test item's, word for word (case and
punctuation aside), are left out, so no program trains on its own test items under another id. The parts
are the same for every i of one k and one `dataset.seed`.
"""

from __future__ import annotations

import dataclasses
import random
import re

from workbench.data import TaskData
from workbench.errors import UserError


def parse_fold(fold, field: str = "dataset.fold") -> tuple[int, int] | None:
    """`"i/k"` -> (i, k), 1-based; None stays None; anything else is one error line naming `field`."""
    if fold is None:
        return None
    parts = fold.split("/") if isinstance(fold, str) else []
    if len(parts) != 2 or not all(p.strip().isdecimal() for p in parts):
        raise UserError(f'give the fold as "i/k" (e.g. "1/2": the first of two halves), not {fold!r}', field=field)
    i, k = int(parts[0]), int(parts[1])
    if k < 2 or not 1 <= i <= k:
        raise UserError(f"fold {fold!r}: k must be at least 2 and i between 1 and k", field=field)
    return i, k


def fold_parts(ids: list[str], k: int, seed: int) -> list[int]:
    """The part (0..k-1) of each item: a seeded shuffle of the ids dealt round-robin, so the parts differ
    in size by at most one and an item's part does not depend on the order the loader returned it in."""
    order = sorted(range(len(ids)), key=lambda n: ids[n])
    random.Random(seed).shuffle(order)
    part = [0] * len(ids)
    for rank, n in enumerate(order):
        part[n] = rank % k
    return part


def _words(row: dict, fields: tuple[str, ...]) -> str:
    return " ".join(" ".join(re.findall(r"\w+", str(row.get(f, "")).lower())) for f in fields)


def cross_fit(data: TaskData, fold: str, *, seed: int, source: str = "<spec>") -> TaskData:
    """The view of `data` for one fold: the fold's part of the test split as test, the other parts
    appended to train, minus training rows that repeat a test item's inputs."""
    import datasets as hf

    i, k = parse_fold(fold)
    test = data.splits["test"]
    if len(test) < k:
        raise UserError(f"fold {fold!r}: the test split of {data.name} has {len(test)} items, fewer than k = {k}",
                        file=source, field="dataset.fold")
    rows = test.to_list()
    ids = [str(r.get("id", n)) for n, r in enumerate(rows)]
    part = fold_parts(ids, k, seed)
    mine = [n for n in range(len(rows)) if part[n] == i - 1]
    others = [n for n in range(len(rows)) if part[n] != i - 1]
    asked = {_words(rows[n], data.input_fields) for n in mine}
    train = data.splits["train"]
    try:
        train = hf.concatenate_datasets([train, test.select(others)]) if len(train) else test.select(others)
    except ValueError as exc:
        raise UserError(f"cannot cross-fit {data.name}: its train and test splits differ in columns ({exc})",
                        file=source, field="dataset.fold") from None
    keep = [n for n, r in enumerate(train.to_list()) if _words(r, data.input_fields) not in asked]
    splits = hf.DatasetDict({**data.splits, "train": train.select(keep), "test": test.select(mine)})
    stats = {**data.stats, "fold": {"fold": f"{i}/{k}", "test items": len(mine), "other parts in train": len(others),
                                    "left out of train, same inputs as a test item": len(train) - len(keep)}}
    return dataclasses.replace(data, splits=splits, stats=stats,
                               fingerprint=f"{data.fingerprint}-fold-{i}-of-{k}-seed-{seed}")
