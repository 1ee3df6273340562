"""BFCL AST matching on hand-checked cases, the BFCL views, and the schema conversion of
every BFCL function (each must yield a model llama.cpp can build a grammar from)."""

from __future__ import annotations

import json

import pytest

from metrics.bfcl_ast import ast_match, ast_match_feedback, match_call, normalize_string
from programs.tool_use import example_call
from workbench.registry import datasets

TRIANGLE = [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]


def call(**arguments):
    return {"name": "calculate_triangle_area", "arguments": arguments}


@pytest.mark.parametrize("predicted, expected", [
    (call(base=10, height=5), "correct"),                       # optional `unit` omitted
    (call(base=10, height=5, unit="Units"), "correct"),         # strings compared normalised
    (call(base=10), "missing argument"),
    (call(base=10.5, height=5), "wrong type"),                  # float for an integer parameter
    (call(base="10", height=5), "wrong type"),
    (call(base=True, height=5), "wrong type"),                  # a bool is not a number
    (call(base=11, height=5), "wrong value"),
    (call(base=10, height=5, unit="cm"), "wrong value"),
    (call(base=10, height=5, color="red"), "unexpected argument"),
    ({"name": "triangle_area", "arguments": {"base": 10, "height": 5}}, "wrong function"),
    (None, "unparseable"),
    ({"name": "calculate_triangle_area", "arguments": "base=10"}, "unparseable"),
])
def test_hand_checked_triangle_cases(predicted, expected):
    assert match_call(predicted, TRIANGLE) == expected


def test_int_is_accepted_for_float_lists_and_dicts_match_element_wise():
    accepted = [{"f": {"p": [0.5], "xs": [[1, 2, 3]], "opts": [{"mode": ["fast"], "depth": [2, ""]}, ""]}}]
    assert match_call({"name": "f", "arguments": {"p": 0.5, "xs": [1, 2, 3]}}, accepted) == "correct"
    assert match_call({"name": "f", "arguments": {"p": 1, "xs": [1, 2, 3]}}, accepted) == "wrong value"
    assert match_call({"name": "f", "arguments": {"p": 0.5, "xs": [1, 2]}}, accepted) == "wrong value"
    assert match_call({"name": "f", "arguments": {"p": 0.5, "xs": [1, 2, 3], "opts": {"mode": "FAST"}}},
                      accepted) == "correct"
    assert match_call({"name": "f", "arguments": {"p": 0.5, "xs": [1, 2, 3], "opts": {"mode": "slow"}}},
                      accepted) == "wrong value"
    whole = [{"g": {"x": [2.0]}}]
    assert match_call({"name": "g", "arguments": {"x": 2}}, whole) == "correct"  # int for float is fine
    assert normalize_string("New York, NY") == "newyorkny"


def test_metric_and_feedback_read_the_dataset_json():
    import dspy

    example = dspy.Example(accepted=json.dumps(TRIANGLE))
    good, bad = dspy.Prediction(call=call(base=10, height=5)), dspy.Prediction(call=call(base=10))
    assert ast_match(example, good) == 1.0 and ast_match(example, bad) == 0.0
    feedback = ast_match_feedback(example, bad)
    assert feedback.score == 0.0 and "missing argument" in feedback.feedback and "base" in feedback.feedback


@pytest.mark.parametrize("name, test_size, train_size, dev_size", [("bfcl_simple_python", 400, 80, 20),
                                                                   ("bfcl_multiple", 200, 264, 40)])
def test_bfcl_views_score_every_item_and_never_train_on_test_requests(name, test_size, train_size, dev_size):
    """BFCL repeats some requests across categories word for word: those partner items are not demos."""
    data = datasets.get(name)()
    assert len(data.splits["test"]) == test_size
    assert len(data.splits["train"]) == train_size and len(data.splits["validation"]) == dev_size
    test_ids = set(data.splits["test"]["id"])
    assert not test_ids & set(data.splits["train"]["id"])
    asked = set(data.splits["test"]["question"])
    seen = set(data.splits["train"]["question"]) | set(data.splits["validation"]["question"])
    assert not asked & seen
    assert data.stats["left_out_of_train"]["same request as a test item"] > 90
    for accepted in data.splits["test"]["accepted"]:  # an accepted call matches itself
        calls = json.loads(accepted)
        assert match_call(example_call(calls), calls) == "correct"


def test_a_bfcl_view_can_train_on_other_categories_and_never_on_its_own():
    """`train_from` swaps the partner for any other categories (simple_python: its 80 `multiple` items plus
    the 150 exec items, which repeat none of its requests); the test split and its twins stay out."""
    from workbench.errors import UserError

    default = datasets.get("bfcl_simple_python")()
    more = datasets.get("bfcl_simple_python")(train_from=["multiple", "exec_simple", "exec_multiple"])
    assert more.splits["test"]["id"] == default.splits["test"]["id"]
    assert len(more.splits["train"]) + len(more.splits["validation"]) == 100 + 150
    assert len(more.splits["validation"]) == 40
    asked = set(more.splits["test"]["question"])
    assert not asked & (set(more.splits["train"]["question"]) | set(more.splits["validation"]["question"]))
    trained = {i.split("_")[0] for i in more.splits["train"]["id"]}
    assert {"multiple", "exec"} <= trained, trained
    assert more.fingerprint != default.fingerprint
    assert datasets.get("bfcl_simple_python")(train_from="multiple").fingerprint != default.fingerprint
    for bad, needle in (("simple_python", "the category this view tests on"), (["nope"], "unknown BFCL category"),
                        ([], "give a BFCL category"), ([3], "give a BFCL category"),
                        (["multiple", "multiple"], "named twice")):
        with pytest.raises(UserError, match=needle) as caught:
            datasets.get("bfcl_simple_python")(train_from=bad)
        assert caught.value.field == "dataset.params.train_from"


def test_every_bfcl_function_schema_converts_and_builds_a_grammar():
    from llama_cpp import LlamaGrammar

    from workbench.data.bfcl import load_category
    from workbench.tools.schema import model_for

    seen = 0
    for category in ("simple_python", "multiple"):
        rows, _ = load_category(category)
        for row in rows:
            for function in json.loads(row["functions"]):
                model = model_for(function["parameters"], function["name"] + "_arguments")
                LlamaGrammar.from_json_schema(json.dumps(model.model_json_schema()), verbose=False)
                seen += 1
    assert seen > 900


def test_omit_optional_leaves_out_exactly_the_arguments_bfcl_lets_a_call_omit_and_still_matches():
    """`omit_optional` (function_caller): gold calls without BFCL's optional arguments (those whose accepted
    values include "") still match; only those arguments go, and the program passes the flag to its gold."""
    import dspy

    from programs.tool_use import function_caller

    data = datasets.get("bfcl_simple_python")()
    left_out = 0
    for accepted in data.splits["test"]["accepted"]:
        calls = json.loads(accepted)
        [(name, options)] = calls[0].items()
        full, short = example_call(calls), example_call(calls, omit_optional=True)
        assert match_call(short, calls) == "correct", (short, calls)
        assert set(full["arguments"]) - set(short["arguments"]) == {k for k, v in options.items()
                                                                   if "" in v and v != [""]}
        left_out += len(full["arguments"]) - len(short["arguments"])
    assert left_out > 100  # BFCL marks many arguments optional (their defaults are accepted too)
    test = data.splits["test"]
    item = next(i for i, a in enumerate(test["accepted"]) if '""' in a)  # an item with an optional argument
    example = dspy.Example(question=test["question"][item], accepted=test["accepted"][item],
                           functions=test["functions"][item])
    for omit in (False, True):
        program = function_caller(data, omit_optional=omit)
        wanted = example_call(json.loads(example.accepted), omit)["arguments"]
        assert program.finetune_gold(example)["arguments"] == wanted  # the fine-tuning answer
        assert program.as_demo("call", example).arguments == wanted  # and the demo it would be
        assert type(program).from_export_config(program.export_config()).omit_optional is omit
    assert example_call(json.loads(example.accepted)) != example_call(json.loads(example.accepted), True)
    with pytest.raises(ValueError, match="omit_optional"):
        function_caller(data, omit_optional="yes")


def test_bfcl_folds_score_every_item_once_and_train_on_the_other_parts():
    """`fold: "i/k"`: the k test splits partition the category, each run trains on the category's other
    parts (besides the partner) and never on its own part or a word-for-word twin of it."""
    from workbench.errors import UserError

    whole = datasets.get("bfcl_simple_python")()
    views = [datasets.get("bfcl_simple_python")(fold=f"{i}/2") for i in (1, 2)]
    tested = [set(v.splits["test"]["id"]) for v in views]
    assert not tested[0] & tested[1] and tested[0] | tested[1] == set(whole.splits["test"]["id"])
    assert all(180 <= len(t) <= 220 for t in tested)
    assert views[0].splits["test"]["id"] == datasets.get("bfcl_simple_python")(fold="1/2").splits["test"]["id"]
    for view, mine, other in zip(views, tested, reversed(tested)):
        trained = set(view.splits["train"]["id"]) | set(view.splits["validation"]["id"])
        assert not trained & mine
        own = {i for i in trained if i.startswith("simple_python")}
        assert own <= other and len(own) > 0.9 * len(other)  # all but the twins of a request under test
        asked = set(view.splits["test"]["question"])
        assert not asked & (set(view.splits["train"]["question"]) | set(view.splits["validation"]["question"]))
        assert any(i.startswith("multiple") for i in trained)
    assert len({whole.fingerprint, views[0].fingerprint, views[1].fingerprint}) == 3
    for bad in ("0/2", "3/2", "1/1", "half", 2, "1/2/3", "²/2"):
        with pytest.raises(UserError) as caught:
            datasets.get("bfcl_simple_python")(fold=bad)
        assert caught.value.field == "dataset.params.fold"
