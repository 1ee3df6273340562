"""Parse failures and LM errors score 0 and are counted; they never abort an evaluation."""

from __future__ import annotations

import dspy
import pytest

from metrics.classification import accuracy
from programs.routing import Router
from tests.fakes import FaultBackend
from workbench.evaluate import TooManyFailures, evaluate
from workbench.lm import build_lm
from workbench.lm.adapters import CompactJSONAdapter
from workbench.spec import LMSpec


def _examples(n: int) -> list[dspy.Example]:
    labels = ["travel", "banking"]
    return [dspy.Example(id=f"x{i}", text=f"message {i}", label=labels[i % 2]).with_inputs("text") for i in range(n)]


def _run(faults: list[str], n: int = 8, **kwargs):
    backend = FaultBackend(faults)
    lm = build_lm(LMSpec(cache=False), backend=backend)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        return evaluate(Router(["travel", "banking"]), _examples(n), accuracy, output_field="label",
                        usage=backend.usage, **kwargs)


def test_garbage_output_is_counted_not_fatal():
    result = _run(['ok:{"label": "travel"}', "garbage"])  # even (travel) examples parse, odd ones do not
    assert result.n == 8
    assert result.parse_failures == 4 and result.error_counts == {"parse": 4}
    assert result.score == pytest.approx(4 / 8)
    failed = result.table[result.table.error_type == "parse"]
    assert (failed.score == 0).all() and failed.predicted.isna().all()


def test_timeouts_and_server_errors_are_counted():
    result = _run(["timeout", "error", 'ok:{"label": "banking"}', 'ok:{"label": "banking"}'], threads=2)
    assert result.error_counts == {"lm_error": 4}
    ok = result.table[result.table.error_type == ""]
    assert result.failures == 4 and len(ok) == 4 and (ok.predicted == "banking").all()
    assert result.score == pytest.approx((ok.gold == "banking").sum() / 8)  # threads decide which rows fail
    assert result.usage.failures == 4


def test_max_failures_stops_a_broken_evaluation():
    with pytest.raises(TooManyFailures):
        _run(["garbage"], n=10, max_failures=3)


def test_a_failed_rag_answer_keeps_its_retrieval_in_the_table():
    """The LM's answer fails to parse; the passages retrieval found are still recorded, so
    retrieval recall is not charged for an answer-stage failure."""
    from metrics.qa import answer_f1
    from programs.rag import rag
    from workbench.data import sample
    from workbench.registry import datasets

    data = sample(datasets.get("xquad_en")(), train=None, dev=None, test=4, seed=0)
    program = rag(data, retriever="bm25", k=5, n=2, answer_mode="free")
    backend = FaultBackend(["garbage"])
    lm = build_lm(LMSpec(cache=False), backend=backend)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        result = evaluate(program, data.examples("test"), answer_f1, output_field="answer", gold_field="answers",
                          example_fields=("gold_passage",))
    assert result.parse_failures == 4
    assert all(len(r) == 5 for r in result.table.retrieved) and result.table.citations.isna().all()
