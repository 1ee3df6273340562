"""Calls that cannot fit the LM's context window are refused before the run starts: one line
naming the field and the window, exit 2, no MLflow run. Real CLI subprocesses; the embedded
model's window is read from its GGUF header, an endpoint's from its model list (mock on 127.0.0.1)."""

from __future__ import annotations

import pytest

from tests.conftest import FAST_LM, SPEC, Store, run_cli, run_main
from workbench.lm.mock_server import MockEndpoint
from workbench.lm.window import endpoint_window, trained_context


def _refused(store: Store, *overrides: str, subprocess: bool = False) -> str:
    args = ["run", str(SPEC), *[a for o in [*store.overrides, "dataset.test=8", *overrides] for a in ("--set", o)]]
    result = run_cli(*args, timeout=300) if subprocess else run_main(*args)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert store.runs() == []  # refused before any run existed
    return lines[0]


@pytest.mark.parametrize("overrides, expected", [
    (["lm.max_tokens=100000000"], "max_tokens 100000000 does not fit the context window n_ctx=4096"),
    (["lm.n_ctx=100000"], "lm.n_ctx: n_ctx 100000 is beyond the context window of SmolLM2-135M-Instruct.Q4_1.gguf "
                          "(8192 tokens)"),
    (["optimizer.params.k=400"], "optimizer.params.k: 400 demos of"),
    (["optimizer.name=sequence", 'optimizer.params={"steps": [{"name": "LabeledFewShot", "params": {"k": 900}}]}'],
     "optimizer.params.steps[0].params.k: 900 demos"),
], ids=["max_tokens", "n_ctx", "k", "sequence_k"])
def test_embedded_window_refusals(store, overrides, expected):
    line = _refused(store, *overrides, subprocess=overrides == ["lm.n_ctx=100000"])
    assert expected in line and "experiments/routing_clinc150.yaml" in line, line


def test_demos_that_fit_are_left_alone(store):
    result = run_cli("run", str(SPEC), "--quiet", *[a for o in [*store.overrides, *FAST_LM, "dataset.test=4",
                                                                "dataset.train=200", "optimizer.params.k=40"]
                                                    for a in ("--set", o)], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_an_endpoint_reporting_its_window_refuses_a_max_tokens_beyond_it(store):
    with MockEndpoint(max_model_len=2048) as lm:
        base = ["lm.backend=openai", f"lm.model={lm.model}", f"lm.api_base={lm.base_url}", "lm.cache=false"]
        line = _refused(store, *base, "lm.max_tokens=4096")
        assert "lm.max_tokens: max_tokens 4096 does not fit mock-model's context window" in line
        assert "(2048 tokens, prompt included)" in line
        assert lm.counts["completion"] == 0  # no tokens spent
    with MockEndpoint() as lm:  # a model list without a window: nothing to check against
        result = run_cli("run", str(SPEC), "--quiet", *[a for o in [*store.overrides, "dataset.test=2",
                         "lm.backend=openai", f"lm.model={lm.model}", f"lm.api_base={lm.base_url}",
                         "lm.cache=false", "lm.max_tokens=4096"] for a in ("--set", o)], timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]


def test_window_readers():
    from workbench.lm.models import resolve_model_path

    assert trained_context(resolve_model_path("smollm2-135m-instruct")) == 8192
    assert endpoint_window({"id": "m", "max_model_len": 32768}) == 32768
    assert endpoint_window({"id": "m", "meta": {"n_ctx_train": 8192}}) == 8192
    assert endpoint_window({"id": "m", "context_length": "big"}) is None and endpoint_window({"id": "m"}) is None
