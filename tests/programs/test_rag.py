"""The RAG program on the real corpus and retrievers: on the embedded LM (a few questions, slow
tier), and a tracked run on the recorded LM (fast tier)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FAST_LM, ROOT, labeled_run, last_sent_to_lm, run_cli
from workbench.errors import UserError
from workbench.runner import run
from workbench.spec import load_spec

RAG_SPEC = ROOT / "experiments" / "rag_xquad.yaml"
BM25 = ["program.params.retriever=bm25", "program.params.retriever_params={}"]
SMALL = ["dataset.test=4", "dataset.dev=4", "tracking.enabled=false", *BM25]
FAST = ["program.params.rerank=none"]  # no reranker to fit: for tests about something else


@pytest.fixture(scope="module")
def outcome():
    return run(load_spec(RAG_SPEC, SMALL))


@pytest.mark.slow
def test_predictions_carry_answer_citations_and_ranking(outcome):
    table = outcome.result.table
    assert len(table) == 4 and outcome.result.failures == 0
    for _, row in table.iterrows():
        assert isinstance(row.predicted, str)
        assert len(row.retrieved) == 10 and len(set(row.retrieved)) == 10
        assert set(row.citations) <= set(row.retrieved[:2])  # cites only passages it was shown
    assert {"gold_passage", "retrieved", "citations"} <= set(table.columns)


@pytest.mark.slow
def test_retrieval_and_answer_metrics_are_separate(outcome):
    m = outcome.summary_metrics
    table = outcome.result.table
    expected_r1 = sum(r[0] == g for r, g in zip(table.retrieved, table.gold_passage)) / len(table)
    assert m["retrieval.recall_at_1"] == pytest.approx(expected_r1)
    assert m["retrieval.recall_at_1"] <= m["retrieval.recall_at_5"] <= m["retrieval.recall_at_10"]
    assert m["answer.f1"] == pytest.approx(outcome.result.score)
    assert 0.0 <= m["answer.groundedness"] <= 1.0 and "answer.citation_precision" in m


@pytest.mark.slow
def test_choose_mode_answers_with_one_of_its_candidate_spans(outcome):
    """The spec's default: the LM's answer is one of the spans cut from the best sentence,
    the citation is the passage that sentence came from, among the n shown."""
    table = outcome.result.table
    for _, row in table.iterrows():
        assert row.predicted in list(row.options) or len(row.options) < 2
        assert all(option in row.context for option in row.options)
        assert len(row.citations) == 1 and row.citations[0] in list(row.retrieved[:2])
    baseline = {b.name: b for b in outcome.baselines}["extractive_bm25_span"]
    assert len(baseline.scores) == len(table) and 0.0 <= baseline.score <= 1.0


@pytest.mark.slow
def test_learned_reranker_beats_its_first_stage_and_reloads_identically():
    from programs.rag import rag
    from workbench.data import sample
    from workbench.registry import datasets
    from workbench.retrieval.learned_rerank import FEATURES, LearnedReranker

    data = sample(datasets.get("xquad_en")(), train=None, dev=None, test=None, seed=0)
    program = rag(data, retriever="hybrid", k=10, n=2, rerank="learned", answer_mode="choose")
    program.warm_up()
    assert program.learned.fitted and len(program.learned.coef) == len(FEATURES)
    dev = data.splits["validation"]
    first = sum(program._first_stage(q)[0] == g for q, g in zip(dev["question"], dev["gold_passage"]))
    ranked = [program.rank(q) for q in dev["question"]]
    reranked = sum(r[0] == g for r, g in zip(ranked, dev["gold_passage"]))
    assert reranked >= first, (reranked, first)  # fitted on train, measured on the dev articles
    twin = LearnedReranker(data.corpus).load_state(json.loads(json.dumps(program.learned.dump_state())))
    question = dev["question"][0]
    assert twin.rerank(question, program._first_stage(question)) == ranked[0]


@pytest.mark.slow
def test_lm_reranker_moves_its_choice_first():
    spec = load_spec(RAG_SPEC, SMALL + ["dataset.test=2", "program.params.rerank=lm", "program.params.rerank_depth=3",
                                        "program.params.answer_mode=free"])
    result = run(spec).result
    assert result.failures == 0 and all(len(r) == 10 for r in result.table.retrieved)


@pytest.mark.parametrize("params, field", [
    ({"k": 0}, "program.params"), ({"k": 3, "n": 5}, "program.params"), ({"retriever": "bm52"}, "program.params.retriever"),
    ({"rerank": "cross"}, "program.params"), ({"answer_mode": "guess"}, "program.params"),
    ({"choices": 1}, "program.params"),
])
def test_bad_rag_parameters(params, field):
    overrides = SMALL + FAST + [f"program.params.{k}={json.dumps(v)}" for k, v in params.items()]
    with pytest.raises(UserError) as info:
        run(load_spec(RAG_SPEC, overrides))
    assert info.value.field == field


def test_bad_parameter_via_cli_is_one_line_exit_2(tmp_path):
    result = run_cli("run", str(RAG_SPEC), "--set", "program.params.n=20", "--set", "tracking.enabled=false")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "program.params" in result.stderr and "n must be" in result.stderr


def test_tracked_rag_run_logs_indexes_and_both_metric_families(store):
    sets = sum((["--set", o] for o in store.overrides), [])
    result = run_cli("run", str(RAG_SPEC), "--set", "dataset.test=3", *sum((["--set", o] for o in BM25 + FAST + FAST_LM), []),
                     *sets, "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    [row] = store.runs()
    run_info = store.client().get_run(row["run_id"])
    assert run_info.info.status == "FINISHED"
    assert {"retrieval.recall_at_1", "retrieval.mrr", "answer.f1", "answer.groundedness"} <= set(run_info.data.metrics)
    artifacts = {a.path for a in store.client().list_artifacts(row["run_id"])}
    assert {"indexes", "predictions.json", "prompt_example.md", "retrieval_misses.csv"} <= artifacts


def test_length_limits_reach_the_schema_the_grammar_is_built_from():
    from llama_cpp import LlamaGrammar

    from programs.rag import answer_signature
    from workbench.lm.adapters import CompactJSONAdapter

    class SchemaLM:
        supported_params = {"response_format"}
        supports_response_schema = True

    kwargs: dict = {}
    CompactJSONAdapter()._prepare_response_format(SchemaLM(), kwargs, answer_signature(3, answer_chars=40))
    schema = kwargs["response_format"].model_json_schema()
    assert schema["properties"]["answer"]["maxLength"] == 40
    assert schema["properties"]["citations"]["maxItems"] == 3
    assert schema["properties"]["citations"]["items"]["enum"] == ["1", "2", "3"]
    LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)  # llama.cpp accepts it


@pytest.mark.slow
def test_per_question_table_holds_the_rendered_prompt(outcome):
    for _, row in outcome.result.table.iterrows():
        assert row.question in row.prompt and "context" in row.prompt  # what the answer predictor saw


def _two_passage_rag(answer_mode: str):
    from programs.rag import RAG
    from workbench.registry import retrievers

    rome = "Rome, the old city on the Tiber river, is the capital of Italy and home to the Colosseum."
    corpus = [{"id": "p1", "title": "Rome", "text": rome},
              {"id": "p2", "title": "Oslo", "text": "Oslo is the capital of Norway. It lies on a fjord."}]
    return RAG(retrievers.get("bm25")(corpus).ready(), {p["id"]: p for p in corpus}, k=2, n=1,
               answer_mode=answer_mode)


@pytest.mark.parametrize("answer_mode, answer", [("free", {"answer": "Rome", "citations": ["1"]}),
                                                 ("choose", {"answer": "Tiber river"})])
def test_labeled_demos_become_the_answer_predictors_own_fields(answer_mode, answer):
    """LabeledFewShot copies raw XQuAD examples (question, answers, gold_passage) in as demos; the
    answer predictor reads question/passages (or context) -> answer. Without the mapping DSPy's
    adapter drops them and the run is zero-shot while its table says "k demos"."""
    import dspy
    from dspy.utils.dummies import DummyLM

    from workbench.optimize.demo_check import unshown_demos

    program = _two_passage_rag(answer_mode)
    program.answer.demos = [dspy.Example(question="Which fjord city is Norway's capital?", answers=["Oslo"],
                                         gold_passage="p2")]
    assert unshown_demos(program) == []
    lm = DummyLM([answer])
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        program(question="What is the capital of Italy?")
    sent = "\n".join(str(m["content"]) for m in lm.history[-1]["messages"])
    assert "Which fjord city is Norway's capital?" in sent and "Oslo" in sent


def test_demos_that_name_no_passage_of_the_corpus_are_reported_dropped():
    import dspy

    from workbench.optimize.demo_check import unshown_demos

    program = _two_passage_rag("free")
    program.answer.demos = [dspy.Example(question="Where?", answers=["Paris"], gold_passage="p9")]
    [line] = unshown_demos(program)
    assert "1 of 1 demos on predictor `answer`" in line


def test_a_labeled_rag_run_keeps_its_demos_without_a_warning(capsys):
    out, _ = labeled_run(RAG_SPEC, SMALL + FAST + FAST_LM + ["dataset.test=2"], 3, "answer", capsys.readouterr)
    assert out.result.n == 2


@pytest.mark.slow
def test_labeled_demos_reach_the_embedded_lms_prompt_in_rag(capsys):
    """End to end on the embedded LM: LabeledFewShot's raw XQuAD examples are in the messages the
    model decodes from (before RAG's `as_demo` the adapter dropped them: a zero-shot run)."""
    out, questions = labeled_run(RAG_SPEC, SMALL + FAST + ["dataset.test=2"], 2, "answer", capsys.readouterr)
    sent = last_sent_to_lm()
    assert all(q in sent for q in questions)
    assert out.result.n == 2 and out.result.failures == 0
