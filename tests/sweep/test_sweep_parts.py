"""The dev-size advice printed before a sweep or an optimizer run: what n items resolve, and
how many a difference of 0.05 needs."""

from __future__ import annotations

import pytest

from workbench.sweep.verdict import items_for, resolution, sizing


@pytest.mark.parametrize("difference", [0.15, 0.1, 0.05, 0.03, 0.01])
def test_items_for_is_the_smallest_n_that_resolves_the_difference(difference):
    n = items_for(difference)
    assert resolution(n) <= difference < resolution(n - 1)


def test_sizing_advises_only_when_the_split_is_short():
    assert sizing(40) == ("dev split: 40 items, so score differences under ±0.15 are noise (95%); "
                          "to see a difference of 0.05, use about 385 (dataset.dev)")
    assert sizing(400) == "dev split: 400 items, so score differences under ±0.05 are noise (95%)"
    assert "(dataset.test)" in sizing(100, "test")


def test_the_shipped_sweep_spec_as_written_is_trial_0_with_its_unset_defaults_filled():
    import workbench
    from tests.conftest import ROOT
    from workbench.search import MISSING, effective_values, incumbent_params

    spec = workbench.load_spec(ROOT / "experiments" / "sweep_routing_clinc150.yaml")
    value = effective_values(spec)
    assert "balanced" not in spec.optimizer.params and value("optimizer.params.balanced") is False  # registered default
    assert value("lm.temperature") == 0.0 and value("program.params.candidates") == 2
    assert value("optimizer.params.no_such") is MISSING
    params, why = incumbent_params(spec.search, value)
    assert why == "" and params == {"optimizer.params.k": 5, "optimizer.params.balanced": False,
                                    "program.params.candidates": 2, "lm.temperature": 0.0}


def test_no_incumbent_says_which_value_is_unknown_or_outside():
    from workbench.search import MISSING, SearchSpec, incumbent_params

    search = SearchSpec.model_validate({"space": {"optimizer.params.k": {"type": "int", "low": 1, "high": 8},
                                                  "lm.temperature": {"type": "float", "low": 0.0, "high": 1.0}}})
    values = {"optimizer.params.k": 5, "lm.temperature": 1.5}
    assert incumbent_params(search, lambda p: values.get(p, MISSING)) == \
        (None, "lm.temperature = 1.5 is outside [0.0, 1.0]")
    assert incumbent_params(search, lambda p: MISSING) == \
        (None, "optimizer.params.k is unset and has no known default")
