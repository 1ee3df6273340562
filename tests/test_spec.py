"""Spec parsing details: overrides are typed, params flatten to stable keys."""

from __future__ import annotations

from tests.conftest import SPEC
from workbench.spec import load_spec


def test_overrides_are_parsed_as_yaml_values():
    spec = load_spec(SPEC, ["dataset.test=7", "lm.temperature=0.5", "optimizer.params={k: 3}",
                            "tracking.enabled=false", "program.params.candidates=0"])
    assert spec.dataset.test == 7 and spec.lm.temperature == 0.5 and spec.optimizer.params == {"k": 3}
    assert spec.tracking.enabled is False and spec.program.params["candidates"] == 0


def test_flat_params_are_stable_and_complete():
    flat = load_spec(SPEC).flat()
    assert list(flat) == sorted(flat)
    assert flat["dataset.name"] == "clinc150_domains" and flat["optimizer.params.k"] == "5"
    assert flat["lm.backend"] == "embedded" and flat["optimizer.reflection_lm"] == "null"
    assert "source" not in flat
