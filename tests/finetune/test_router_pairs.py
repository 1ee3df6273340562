"""How a narrowed router lists its candidates in the prompts it trains and runs on: in the label
set's order (`candidate_order: label`) and with the ranker's guess (`ranker_hint`). Recorded LM; the
real embedded LM's side is in tests/programs/test_router.py."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.conftest import SPEC

pytest.importorskip("torch")  # as the other finetune part tests: the pairs module is part of the finetune extra


def test_candidates_in_label_order_hide_the_rankers_pick_from_the_prompt_but_not_from_the_table():
    """Listed by score, the gold label is first on most lists and a model trained on them learns to
    copy the first (both top-10 benchmark rows took it on ~98% of items). `candidate_order: label`
    lists the same ten in the label set's order, in training pairs, at evaluation and in the plain
    prompt's client; the per-example table keeps them by score (the ranker's own pick stays visible)."""
    import dspy

    from workbench.export.prompt_client import PlainPrompt
    from workbench.finetune.pairs import build_pairs
    from workbench.lm import build_lm
    from workbench.lm.adapters import build_adapter
    from workbench.runner import prepare
    from workbench.spec import validate

    data = yaml.safe_load(SPEC.read_text())
    data["program"]["params"].update(candidates=10, candidate_order="label")
    data["dataset"].update(name="banking77", train=400, dev=10, test=10)
    data["lm"].update(backend="recorded", model="synthetic")
    prepared = prepare(validate(data, str(SPEC)))
    program, examples = prepared.program, prepared.trainset[:200]
    position = {label: i for i, label in enumerate(program.labels)}

    def listed(messages: list[dict]) -> list[str]:
        line = next(x for x in messages[-1]["content"].splitlines() if x.startswith("label must be one of: "))
        return line.split(": ", 1)[1].split(", ")

    held_out = [program.demo_pool.top_labels_out_of_fold(e.text, 10) for e in examples]
    with dspy.context(adapter=build_adapter("compact_json")):
        pairs = build_pairs(program, examples)
    lists = [listed(p.messages) for p in pairs]
    expected = [sorted(top, key=position.get) for e, top in zip(examples, held_out) if e.label in top]
    assert lists == expected and any(x != top for x, top in zip(lists, held_out))
    kept = [e for e, top in zip(examples, held_out) if e.label in top]
    assert sum(x[0] == e.label for x, e in zip(lists, kept)) / len(kept) < 0.35  # the first is no giveaway

    lm = build_lm(prepared.spec.lm)
    text = prepared.evalset[0].text
    with dspy.context(lm=lm, adapter=build_adapter("compact_json")):
        prediction = program(text=text)
    ranked = program.demo_pool.top_labels(text, 10)
    assert prediction.candidates == ranked  # by score in the table
    assert listed(lm.history[-1]["messages"]) == sorted(ranked, key=position.get) != ranked
    steps = program.plain_prompt()
    assert steps["candidate_order"] == "label"
    assert client_order(PlainPrompt, steps, ranked) == sorted(ranked, key=position.get)  # the exported client
    with pytest.raises(ValueError, match="candidate_order"):
        type(program)(["a", "b"], candidates=1, candidate_order="score")


def test_the_ranker_hint_shows_the_out_of_fold_guess_in_training_and_the_full_rankers_at_evaluation():
    """With `ranker_hint`, every prompt also says which label the ranker would pick and how sure it
    is; in training pairs that is the out-of-fold ranker (as sure as on a new message), at evaluation
    the full one. The guess is the list's first only by score, never by position."""
    import re

    import dspy

    from workbench.finetune.pairs import build_pairs
    from workbench.lm import build_lm
    from workbench.lm.adapters import build_adapter
    from workbench.runner import prepare
    from workbench.spec import validate

    data = yaml.safe_load(SPEC.read_text())
    data["program"]["params"].update(candidates=10, candidate_order="label", ranker_hint=True)
    data["dataset"].update(name="banking77", train=400, dev=10, test=10)
    data["lm"].update(backend="recorded", model="synthetic")
    prepared = prepare(validate(data, str(SPEC)))
    program, examples = prepared.program, prepared.trainset[:100]

    def guess(messages: list[dict]) -> tuple[str, float]:
        found = re.search(r"^ranker_guess: (\S+) \((\d\.\d\d)\)$", messages[-1]["content"], re.M)
        assert found, messages[-1]["content"]
        return found[1], float(found[2])

    with dspy.context(adapter=build_adapter("compact_json")):
        pairs = build_pairs(program, examples)
    pool = program.demo_pool
    held_out = [pool.top_labels_out_of_fold(e.text, 10, scored=True) for e in examples]
    expected = [(top[0][0], round(top[0][1], 2)) for e, top in zip(examples, held_out) if e.label in dict(top)]
    assert [guess(p.messages) for p in pairs] == expected
    full = [pool.top_labels(e.text, 1, scored=True)[0] for e in examples[:len(pairs)]]
    assert sum(g[1] for g in expected) / len(expected) < sum(p for _, p in full) / len(full) - 0.1  # less sure

    lm = build_lm(prepared.spec.lm)
    text = prepared.evalset[0].text
    with dspy.context(lm=lm, adapter=build_adapter("compact_json")):
        program(text=text)
    best, probability = pool.top_labels(text, 1, scored=True)[0]
    assert guess(lm.history[-1]["messages"]) == (best, round(probability, 2))
    with pytest.raises(ValueError, match="ranker_hint needs candidates"):
        type(program)(["a", "b"], ranker_hint=True)
    with pytest.raises(ValueError, match="ranker_hint must be true or false"):
        type(program)(["a", "b"], candidates=1, ranker_hint="yes")


def test_hint_from_hides_an_unsure_guess_and_hint_dropout_hides_a_share_of_training_hints():
    """`hint_from: p` shows the ranker's guess only where its probability is at least p ("none"
    elsewhere), in training pairs (out of fold) and at evaluation (the full ranker) alike, and says so
    in the field's description; `hint_dropout: s` also hides it from a fixed share of the training
    prompts only, drawn from each message's hash (the same pairs on every build)."""
    import re

    import dspy

    from programs.routing import hidden_in_training
    from workbench.finetune.pairs import build_pairs, pairs_digest
    from workbench.lm import build_lm
    from workbench.lm.adapters import build_adapter
    from workbench.runner import prepare
    from workbench.spec import validate

    data = yaml.safe_load(SPEC.read_text())
    data["program"]["params"].update(candidates=10, candidate_order="label", ranker_hint=True, hint_from=0.2,
                                     hint_dropout=0.3)
    data["dataset"].update(name="banking77", train=400, dev=10, test=40)
    data["lm"].update(backend="recorded", model="synthetic")
    prepared = prepare(validate(data, str(SPEC)))
    program, examples = prepared.program, prepared.trainset[:100]
    pool = program.demo_pool

    def hint(messages: list[dict]) -> str:
        found = re.search(r"^ranker_guess: (.+)$", messages[-1]["content"], re.M)
        assert found, messages[-1]["content"]
        return found[1]

    with dspy.context(adapter=build_adapter("compact_json")):
        pairs = build_pairs(program, examples)
        again = build_pairs(program, examples)
    assert pairs_digest(pairs) == pairs_digest(again)
    held_out = [(e, pool.top_labels_out_of_fold(e.text, 10, scored=True)) for e in examples]
    kept = [(e, top) for e, top in held_out if e.label in dict(top)]
    expected = ["none" if top[0][1] < 0.2 or hidden_in_training(e.text, 0.3) else f"{top[0][0]} ({top[0][1]:.2f})"
                for e, top in kept]
    assert [hint(p.messages) for p in pairs] == expected
    unsure = sum(top[0][1] < 0.2 for _, top in kept)
    dropped = sum(top[0][1] >= 0.2 and hidden_in_training(e.text, 0.3) for e, top in kept)
    shown = sum(h != "none" for h in expected)
    assert unsure >= 5 and dropped >= 3 and shown >= 10, (unsure, dropped, shown)
    assert 0.15 < sum(hidden_in_training(e.text, 0.3) for e in examples) / len(examples) < 0.45
    desc = program.predict.signature.input_fields["ranker_guess"].json_schema_extra["desc"]
    assert desc.endswith("or none when that probability is below 0.2")  # for adapters that show descriptions

    lm = build_lm(prepared.spec.lm)
    seen = []
    with dspy.context(lm=lm, adapter=build_adapter("compact_json")):
        for example in prepared.evalset:
            program(text=example.text)
            best, probability = pool.top_labels(example.text, 1, scored=True)[0]
            seen.append((hint(lm.history[-1]["messages"]), probability))
            assert seen[-1][0] == (f"{best} ({probability:.2f})" if probability >= 0.2 else "none")
    assert any(h == "none" for h, _ in seen) and any(h != "none" for h, _ in seen)
    rebuilt = type(program).from_export_config(program.export_config())
    assert (rebuilt.hint_from, rebuilt.hint_dropout) == (0.2, 0.0)  # dropout is for training only

    for name in ("hint_from", "hint_dropout"):
        for bad in (1, -0.1, "0.5", True):
            with pytest.raises(ValueError, match=f"{name} must be a number from 0 up to"):
                type(program)(["a", "b"], candidates=1, ranker_hint=True, **{name: bad})
        with pytest.raises(ValueError, match="need ranker_hint: true"):
            type(program)(["a", "b"], candidates=1, **{name: 0.5})


def test_unsure_weight_weighs_each_pair_by_how_unsure_the_out_of_fold_ranker_is():
    """`unsure_weight: w` gives each training pair the weight 1 + (w - 1)(1 - p), p the out-of-fold
    ranker's top probability for its message; without it every pair weighs 1 and keeps its digest
    (so adapters cached before weights existed are still found)."""
    import dspy

    from workbench.finetune.pairs import build_pairs, pairs_digest
    from workbench.lm.adapters import build_adapter
    from workbench.runner import prepare
    from workbench.spec import validate

    data = yaml.safe_load(SPEC.read_text())
    data["program"]["params"].update(candidates=10, candidate_order="label", unsure_weight=5)
    data["dataset"].update(name="banking77", train=400, dev=10, test=10)
    data["lm"].update(backend="recorded", model="synthetic")
    prepared = prepare(validate(data, str(SPEC)))
    program, examples = prepared.program, prepared.trainset[:80]
    with dspy.context(adapter=build_adapter("compact_json")):
        weighted = build_pairs(program, examples)
        program.unsure_weight = 1.0
        plain = build_pairs(program, examples)
    held_out = [program.demo_pool.top_labels_out_of_fold(e.text, 10, scored=True) for e in examples]
    tops = [top[0][1] for e, top in zip(examples, held_out) if e.label in dict(top)]
    assert [p.weight for p in weighted] == pytest.approx([1 + 4 * (1 - p) for p in tops])
    assert min(p.weight for p in weighted) < 2 < 3 < max(p.weight for p in weighted)  # the ranker is sure and unsure
    assert {p.weight for p in plain} == {1.0}
    assert [p.messages for p in plain] == [p.messages for p in weighted]
    unweighted = [type(p)(p.messages, p.answer) for p in plain]
    assert pairs_digest(plain) == pairs_digest(unweighted) != pairs_digest(weighted)
    for bad in (0.5, "3", True):
        with pytest.raises(ValueError, match="unsure_weight must be a number of at least 1"):
            type(program)(["a", "b"], candidates=1, unsure_weight=bad)
    with pytest.raises(ValueError, match="unsure_weight needs candidates"):
        type(program)(["a", "b"], unsure_weight=3)


def test_a_weighted_schedule_shows_every_pair_once_a_pass_and_the_heavy_ones_first():
    """The training schedule: each pass is a permutation of the pairs; with weights, the heavy pairs
    fill the first batches (what a run stopped by its time budget sees), and all-1 weights give the
    unweighted schedule exactly (same seed, same adapter as before weights existed)."""
    from workbench.finetune.train import _batches

    weights = [6.0] * 100 + [1.0] * 900
    schedule = _batches(1000, 10, seed=3, steps=150, weights=weights)
    flat = [i for batch in schedule for i in batch]
    assert sorted(flat[:1000]) == list(range(1000)) and len(set(flat[1000:])) == 500
    heavy_early = sum(i < 100 for i in flat[:200]) / 200
    assert heavy_early > 0.3  # a tenth of the pairs, a third and more of the first 200 drawn
    assert _batches(1000, 10, 3, 150, [1.0] * 1000) == _batches(1000, 10, 3, 150) != schedule



def test_batches_grouped_by_length_keep_each_window_s_pairs_and_cut_the_padding():
    """`group_by_length`: each window of 50 batches holds the same pairs as without it (so a pass still
    shows every pair once and weighted pairs still come early), cut anew from the pairs sorted by length
    and shown in a seeded random order; a batch's longest row is then close to its others."""
    import random

    from workbench.finetune.train import GROUP_WINDOW, _batches

    rng = random.Random(5)
    lengths = [rng.randint(20, 300) for _ in range(1000)]
    plain = _batches(1000, 8, seed=3, steps=260)
    grouped = _batches(1000, 8, seed=3, steps=260, lengths=lengths)
    assert grouped == _batches(1000, 8, seed=3, steps=260, lengths=lengths) and len(grouped) == 260
    assert all(len(batch) == 8 for batch in grouped)
    for w in range(0, 260, GROUP_WINDOW):
        window = slice(w, w + GROUP_WINDOW)
        assert sorted(i for b in grouped[window] for i in b) == sorted(i for b in plain[window] for i in b)

    def padding(batches):
        return sum(8 * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches) / sum(
            8 * max(lengths[i] for i in b) for b in batches)

    assert padding(plain) > 0.25 and padding(grouped) < 0.05, (padding(plain), padding(grouped))
    # the windows' batches are shuffled, not served shortest first
    first_window = [max(lengths[i] for i in b) for b in grouped[:GROUP_WINDOW]]
    assert first_window != sorted(first_window)

def client_order(plain_prompt, steps: dict, ranked: list[str]) -> list[str]:
    """The exported client's ordering step on a ranker whose scores fall in `ranked`'s order (its
    TF-IDF fit is tested in tests/export)."""
    import types

    client = plain_prompt.__new__(plain_prompt)
    client.steps, client._np = {**steps, "candidates": len(ranked)}, np
    probs = np.linspace(1.0, 0.1, len(ranked))
    client._ranker = types.SimpleNamespace(classes_=ranked, predict_proba=lambda _: [probs])
    client._rank_vectorizer = types.SimpleNamespace(transform=lambda texts: texts)
    return client.allowed_labels("anything")
