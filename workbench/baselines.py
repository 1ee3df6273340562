"""Classical baselines scored on the same evaluation examples as the LM program.

On a 135M-parameter LM a TF-IDF classifier often wins; users should see that next to
every LM score. Baselines are keyed by task; a task without one simply prints none.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from workbench.data import TaskData, column
from workbench.stats import bootstrap_ci
from workbench.textclf import one_nn_predict, ranker_for


class BaselineScore:
    def __init__(self, name: str, correct: list[float], seconds: float):
        self.name = name
        self.scores = np.asarray(correct, dtype=float)
        self.score = float(self.scores.mean()) if len(self.scores) else 0.0
        self.ci = bootstrap_ci(self.scores)
        self.seconds = seconds


def routing_baselines(data: TaskData, eval_texts: list[str], eval_labels: list[str]) -> list[BaselineScore]:
    train = data.splits["train"]
    texts, labels = column(train, data.input_fields[0]), column(train, data.label_field)
    results = []
    start = time.perf_counter()
    predicted = one_nn_predict(texts, labels, eval_texts)
    results.append(BaselineScore("tfidf_1nn", [p == g for p, g in zip(predicted, eval_labels)],
                                 time.perf_counter() - start))
    start = time.perf_counter()
    predicted = ranker_for(texts, labels).predict(eval_texts)
    results.append(BaselineScore("tfidf_logreg", [p == g for p, g in zip(predicted, eval_labels)],
                                 time.perf_counter() - start))
    return results


BASELINES: dict[str, Callable[..., list[BaselineScore]]] = {"routing": routing_baselines}


def task_baseline(task: str):
    """Register `fn(data, eval_inputs, eval_golds) -> [BaselineScore]` as a task's baselines
    (a program module registers its own, e.g. `programs/rag.py`)."""
    def register(fn):
        BASELINES[task] = fn
        return fn
    return register
