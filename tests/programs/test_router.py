"""The router on the real embedded LM: narrowed labels, retrieved demos, JSON state round trip."""

from __future__ import annotations

import json

import dspy
import pytest

from programs.routing import Router, router
from workbench.data import sample
from workbench.lm import build_lm
from workbench.lm.adapters import CompactJSONAdapter
from workbench.optimize import CompileContext
from workbench.registry import datasets, optimizers
from workbench.spec import LMSpec


@pytest.fixture(scope="module")
def data():
    return sample(datasets.get("clinc150_domains")(), train=3000, dev=10, test=8, seed=1)


@pytest.fixture
def lm(embedded_backend):
    return build_lm(LMSpec(cache=False, max_tokens=32), backend=embedded_backend)


def test_candidates_narrow_the_grammar(data, lm):
    program = router(data, candidates=2)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        for example in data.examples("test")[:4]:
            prediction = program(text=example.text)
            assert len(prediction.candidates) == 2 and prediction.label in prediction.candidates
            sent = lm.history[-1]["messages"][-1]["content"]
            assert f"label must be one of: {', '.join(prediction.candidates)}" in sent


def test_retrieval_demos_state_round_trip(data, lm, tmp_path):
    student = router(data, candidates=2)
    ctx = CompileContext(student=student, trainset=data.examples("train"), valset=[], metric=None,
                         feedback_metric=None, lm=lm, prompt_lm=lm, reflection_lm=lm, seed=0, threads=1)
    compiled = optimizers.get("retrieval_demos")(ctx, k=4)
    assert student.demo_pool.k == 0  # the student is not modified
    path = tmp_path / "program.json"
    path.write_text(json.dumps(compiled.dump_state()))
    reloaded = router(sample(datasets.get("clinc150_domains")(), train=10, dev=10, test=8, seed=9), candidates=2)
    reloaded.load_state(json.loads(path.read_text()))
    assert len(reloaded.demo_pool.examples) == 3000 and reloaded.demo_pool.k == 4
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        for example in data.examples("test")[:4]:
            a, b = compiled(text=example.text), reloaded(text=example.text)
            assert (a.label, a.candidates) == (b.label, b.candidates)
            assert lm.history[-1]["messages"] == lm.history[-2]["messages"]  # identical prompts, demos included
    assert lm.history[-1]["messages"][1]["role"] == "user" and len(lm.history[-1]["messages"]) == 2 + 2 * 4


def test_label_order_and_ranker_hint_on_the_real_lm(data, lm):
    """The embedded LM gets the candidates in the label set's order and the ranker's guess as an input
    line, answers within the candidates, and the prediction keeps them by score."""
    program = router(data, candidates=3, candidate_order="label", ranker_hint=True)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        for example in data.examples("test")[:3]:
            prediction = program(text=example.text)
            (best, probability), = program.demo_pool.top_labels(example.text, 1, scored=True)
            assert prediction.candidates[0] == best and prediction.label in prediction.candidates
            sent = lm.history[-1]["messages"][-1]["content"]
            assert f"ranker_guess: {best} ({probability:.2f})" in sent
            listed = sorted(prediction.candidates, key=data.labels.index)
            assert f"label must be one of: {', '.join(listed)}" in sent


def test_hint_from_shows_the_guess_only_where_the_ranker_is_sure_on_the_real_lm(data, lm):
    """With `hint_from`, the embedded LM is told "none" where the ranker's probability is below it and
    still answers within the candidates."""
    examples = data.examples("test")[:6]
    program = router(data, candidates=3, candidate_order="label", ranker_hint=True)
    sure = [program.demo_pool.top_labels(e.text, 1, scored=True)[0][1] for e in examples]
    cut = sorted(sure)[len(sure) // 2]  # about half the items above, half below
    program = router(data, candidates=3, candidate_order="label", ranker_hint=True, hint_from=cut)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        for example, probability in zip(examples, sure):
            prediction = program(text=example.text)
            sent = lm.history[-1]["messages"][-1]["content"]
            assert ("ranker_guess: none" in sent) == (probability < cut), (probability, cut, sent)
            assert prediction.label in prediction.candidates


def test_router_rejects_bad_candidates():
    with pytest.raises(ValueError, match="candidates"):
        Router(["a", "b"], candidates=3)


@pytest.mark.parametrize("params, message", [
    ({"ranker_hint": True}, "ranker_hint needs candidates > 0"),
    ({"candidates": 3, "unsure_weight": 0.5}, "unsure_weight must be a number of at least 1"),
    ({"candidates": 3, "hint_dropout": 0.3}, "need ranker_hint: true"),
    ({"candidates": 3, "candidate_order": "alphabetic"}, "candidate_order must be one of rank, label"),
])
def test_the_spec_check_and_the_built_router_refuse_the_same_combinations(params, message):
    from programs.routing_params import check_router_params

    with pytest.raises(ValueError, match=message):
        check_router_params(params)
    with pytest.raises(ValueError, match=message):
        Router(["a", "b", "c", "d"], **params)


def test_program_parameters_are_checked_by_their_defaults_type_without_dspy():
    from workbench import registry
    from workbench.errors import UserError
    from workbench.program_params import check_program_params

    info = registry.programs.info("router")
    assert info["check"] == "call:programs.routing_params:check_router_params"
    check_program_params(info, {"candidates": 3, "unsure_weight": 2, "hint_from": 0, "ranker_hint": True}, "s.yaml")
    for params, said in [({"candidates": True}, "an integer"), ({"candidates": 2.5}, "an integer"),
                         ({"ranker_hint": 1}, "true or false"), ({"instructions": 7}, "text"),
                         ({"candidates": 3, "ranker_hint": True, "hint_from": "half"}, "a number")]:
        with pytest.raises(UserError, match=said) as caught:
            check_program_params(info, params, "s.yaml")
        assert caught.value.file == "s.yaml" and caught.value.field.startswith("program.params")
