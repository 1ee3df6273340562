"""Run summaries for RAG: retrieval quality and answer quality, logged separately.

Both read the per-example table (`retrieved`, `citations`, `gold_passage`, `gold`,
`predicted`) and the dataset's corpus; a failed prediction counts as a miss everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrics.qa import citation_precision, exact_match, grounded, recall_at_k, reciprocal_rank, token_f1
from workbench.data import TaskData
from workbench.registry import summary
from workbench.stats import bootstrap_ci


def _ids(value) -> list[str]:
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else []


@summary("retrieval")
def retrieval(table: pd.DataFrame, data: TaskData) -> dict:
    """recall@1/3/5/10 and MRR of the ranked `retrieved` ids against `gold_passage`."""
    rows = []
    for retrieved, gold in zip(table["retrieved"], table["gold_passage"]):
        ids = _ids(retrieved)
        rows.append({f"recall_at_{k}": recall_at_k(ids, gold, k) for k in (1, 3, 5, 10)}
                    | {"mrr": reciprocal_rank(ids, gold)})
    frame = pd.DataFrame(rows)
    metrics = {f"retrieval.{c}": float(frame[c].mean()) for c in frame}
    misses = table.loc[frame["recall_at_10"] == 0, ["id", "question", "gold_passage"]] if len(frame) else frame
    return {"metrics": metrics, "tables": {"retrieval_misses.csv": misses}}


@summary("answer_quality")
def answer_quality(table: pd.DataFrame, data: TaskData) -> dict:
    """Exact match and token F1 (with 95% CIs), citation precision and groundedness."""
    passages = {p["id"]: p["text"] for p in data.corpus or []}
    em, f1, cite, ground = [], [], [], []
    for predicted, gold, citations in zip(table["predicted"], table["gold"], table["citations"]):
        answer, answers, cited = str(predicted or ""), list(gold), _ids(citations)
        em.append(exact_match(answer, answers))
        f1.append(token_f1(answer, answers))
        cite.append(citation_precision(cited, passages, answers))
        ground.append(grounded(answer, cited, passages))
    metrics = {"answer.exact_match": float(np.mean(em)) if em else 0.0, "answer.f1": float(np.mean(f1)) if f1 else 0.0,
               "answer.citation_precision": float(np.mean(cite)) if cite else 0.0,
               "answer.groundedness": float(np.mean(ground)) if ground else 0.0}
    low, high = bootstrap_ci(f1)
    metrics.update({"answer.f1_ci_low": low, "answer.f1_ci_high": high})
    return {"metrics": metrics}
