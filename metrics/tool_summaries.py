"""Run summaries for function calling: how many calls failed, and how."""

from __future__ import annotations

import json

import pandas as pd

from metrics.bfcl_ast import ERROR_TYPES, match_call
from workbench.data import TaskData
from workbench.registry import summary


@summary("error_types")
def error_types(table: pd.DataFrame, data: TaskData) -> dict:
    """Share of each BFCL error type (correct, wrong function, missing argument, ...)."""
    kinds = []
    for predicted, gold in zip(table["predicted"], table["gold"]):
        accepted = json.loads(gold) if isinstance(gold, str) else list(gold)
        kinds.append(match_call(predicted if isinstance(predicted, dict) else None, accepted))
    counts = pd.Series(kinds, dtype=object).value_counts()
    total = max(len(kinds), 1)
    metrics = {f"calls.{kind.replace(' ', '_')}": float(counts.get(kind, 0)) / total for kind in ERROR_TYPES}
    frame = pd.DataFrame({"id": table["id"], "error_type": kinds})
    return {"metrics": metrics, "tables": {"error_types.csv": frame}}
