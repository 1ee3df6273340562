"""A real endpoint fails: retries, preflight, breaker, rate limits, against a real HTTP mock.

Every run goes through the CLI (`workbench run`) against `MockEndpoint` on 127.0.0.1 and
asserts the exit code and the MLflow run's final status.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import endpoint_spec, free_port
from workbench.cli import main
from workbench.lm.resilience import Breaker, RateLimiter, RetryPolicy, is_transient


def _run(capsys, spec, store, *extra: str) -> tuple[int, str]:
    code = main(["run", str(spec), *sum((["--set", o] for o in [*store.overrides, *extra]), [])])
    return code, capsys.readouterr().err


def _metrics(store, run_id: str) -> dict[str, float]:
    return store.client().get_run(run_id).data.metrics


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- the policy pieces, without a server ----------------------------------------------------

def test_backoff_grows_is_jittered_and_honours_retry_after():
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=4)
    delays = [[policy.delay(a, None) for _ in range(200)] for a in range(5)]
    assert all(0 <= d <= min(4, 0.5 * 2 ** a) for a, row in enumerate(delays) for d in row)
    assert max(delays[3]) > max(delays[0])            # the ceiling grows
    assert len({round(d, 6) for d in delays[2]}) > 100  # and the waits are spread (jitter)
    assert policy.delay(0, 3.0) >= 3.0                  # Retry-After is a floor


def test_which_errors_are_transient():
    from dspy.lm15 import AuthError, InvalidRequestError, RateLimitError, ServerError, TimeoutError, TransportError

    for exc in (RateLimitError("x"), ServerError("x"), TimeoutError("x"), TransportError("x")):
        assert is_transient(exc)
    for exc in (AuthError("x"), InvalidRequestError("x"), ValueError("x")):
        assert not is_transient(exc)
    for status, transient in ((408, True), (409, True), (400, False), (404, False), (422, False), (502, True)):
        exc = InvalidRequestError("x")
        exc.status = status
        assert is_transient(exc) is transient


def test_breaker_opens_after_n_in_a_row_and_a_success_resets_it():
    breaker = Breaker(limit=3)
    from dspy.lm15 import RateLimitError, TransportError

    for error in (TransportError("a"), RateLimitError("b"), None, TransportError("c"), TransportError("d")):
        breaker.record(error)
    assert not breaker.open
    breaker.record(OSError("e"))
    assert not breaker.open  # not an endpoint failure: neither counted nor a reset
    from dspy.lm15 import ContextLengthError, ServerError

    breaker.record(ContextLengthError("prompt too long"))
    breaker.record(ServerError("e"))
    assert breaker.open and "3 LM calls in a row" in breaker.reason
    with pytest.raises(Exception, match="in a row"):
        breaker.check()


def test_rate_limiter_spaces_requests_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    limiter = RateLimiter(rpm=600)  # 10 per second, a 1-second burst allowed
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(lambda _: limiter.wait(10), range(25)))
    elapsed = time.monotonic() - start
    assert 1.2 <= elapsed <= 3.5, elapsed  # 25 requests at 10/s after a burst of ~10
    assert sum(w > 0 for w in waits) >= 10
    tokens = RateLimiter(tpm=6000)  # 100 tokens per second
    assert tokens.reserve(100) == 0 and tokens.reserve(100) == 0  # the burst
    assert tokens.reserve(100) > 0


# -- the backend against the mock ------------------------------------------------------------

def _backend(server, **kwargs):
    from workbench.lm.openai_compat import OpenAICompatBackend

    return OpenAICompatBackend(server.model, server.base_url, timeout_s=kwargs.pop("timeout_s", 2.0), **kwargs)


def _ask(backend):

    from workbench.lm import build_lm
    from workbench.spec import LMSpec

    lm = build_lm(LMSpec(cache=False), backend=backend)
    return lm("hello")


def test_transient_failures_are_retried_and_counted(mock_endpoint):
    server = mock_endpoint(faults=["503", "429", "408", "reset", "garbage", "timeout", "ok"], retry_after=0,
                           timeout_sleep=1.0)
    backend = _backend(server, retries=6, timeout_s=0.4)
    backend.retry.base_seconds = 0.01
    assert _ask(backend)
    usage = backend.usage.snapshot()
    assert usage.retries == 6 and usage.failures == 0 and server.stats()["completions"] == 7


def test_retry_after_is_honoured_and_bounded_by_retry_max_seconds(mock_endpoint):
    server = mock_endpoint(faults=["429", "ok"], retry_after=0.6)
    backend = _backend(server, retries=3)
    start = time.monotonic()
    _ask(backend)
    assert time.monotonic() - start >= 0.6
    slow = mock_endpoint(faults=["429"], retry_after=30)
    capped = _backend(slow, retries=10, retry_max_seconds=0.5)
    start = time.monotonic()
    with pytest.raises(Exception, match="429"):
        _ask(capped)
    assert time.monotonic() - start < 3
    assert capped.usage.snapshot().retries >= 1


@pytest.mark.parametrize("status", ["400", "404", "401"])
def test_client_errors_are_not_retried(mock_endpoint, status):
    server = mock_endpoint(faults=[status])
    backend = _backend(server, retries=5)
    with pytest.raises(Exception, match=status):
        _ask(backend)
    assert server.stats()["completions"] == 1 and backend.usage.snapshot().retries == 0


# -- preflight: a dead or misconfigured endpoint is exit 2 before anything runs -------------------

def test_dead_endpoint_is_exit_2_in_seconds_with_no_run(tmp_path, store, capsys):
    class Closed:  # nothing listens on this port
        model = "mock-model"
        base_url = f"http://127.0.0.1:{free_port()}/v1"

    spec = endpoint_spec(tmp_path / "spec.yaml", Closed)
    start = time.monotonic()
    code, err = _run(capsys, spec, store)
    assert code == 2 and time.monotonic() - start < 10
    line = _one_line(err)
    assert "lm.api_base" in line and "cannot reach" in line and str(spec) in line
    assert store.runs() == []


def test_unknown_model_and_rejected_key_name_their_field(tmp_path, store, capsys, mock_endpoint, monkeypatch):
    server = mock_endpoint(api_key="sk-right-key-0001")
    monkeypatch.setenv("WB_TEST_KEY", "sk-wrong-key-9999")
    spec = endpoint_spec(tmp_path / "spec.yaml", server, lm={"api_key_env": "WB_TEST_KEY"})
    code, err = _run(capsys, spec, store)
    line = _one_line(err)
    assert code == 2 and "lm.api_key_env" in line and "rejected the key in $WB_TEST_KEY" in line
    assert "sk-wrong-key-9999" not in err
    monkeypatch.setenv("WB_TEST_KEY", "sk-right-key-0001")
    code, err = _run(capsys, spec, store, "lm.model=gpt-nonexistent")
    line = _one_line(err)
    assert code == 2 and "lm.model" in line and "gpt-nonexistent" in line and "mock-model" in line
    assert store.runs() == [] and server.stats()["completions"] == 0


# -- flaky, dying, and mostly-failing endpoints ------------------------------------------------

def test_a_half_flaky_endpoint_scores_like_a_clean_one(tmp_path, store, capsys, mock_endpoint):
    clean = mock_endpoint()
    code, _ = _run(capsys, endpoint_spec(tmp_path / "clean.yaml", clean), store)
    assert code == 0
    flaky = mock_endpoint(faults=["503", "ok", "429", "ok"], retry_after=0)
    code, err = _run(capsys, endpoint_spec(tmp_path / "flaky.yaml", flaky, eval={"threads": 4}), store)
    assert code == 0, err
    assert "endpoint: 20 retried LM calls" in err
    runs = store.runs()  # by id: two runs started in the same second share a name
    assert all(r["status"] == "FINISHED" for r in runs) and len(runs) == 2
    clean_run, flaky_run = sorted(store.runs(), key=lambda r: store.client().get_run(r["run_id"]).info.start_time)
    m_clean, m_flaky = _metrics(store, clean_run["run_id"]), _metrics(store, flaky_run["run_id"])
    assert m_flaky["score"] == m_clean["score"] and m_flaky["failure_rate"] == 0
    assert m_flaky["lm_retries"] == 20 and m_clean["lm_retries"] == 0  # one retry for every other call
    assert sum(row["retries"] for row in store.predictions(flaky_run["run_id"])) == 20


def test_an_endpoint_that_dies_mid_run_stops_it_failed_with_the_partial_table(tmp_path, store, capsys, mock_endpoint):
    server = mock_endpoint(down_after=6)
    spec = endpoint_spec(tmp_path / "spec.yaml", server, test=60,
                         lm={"retries": 1}, eval={"max_consecutive_lm_errors": 4})
    start = time.monotonic()
    code, err = _run(capsys, spec, store)
    assert code == 1 and time.monotonic() - start < 60
    assert "4 LM calls in a row failed" in err and "FAILED" in err
    [run] = store.runs()
    assert run["status"] == "FAILED"
    got = store.client().get_run(run["run_id"]).data
    assert got.metrics["n_examples"] == 10 and got.tags["workbench.partial"] == "true"
    assert "in a row" in got.tags["workbench.failure_reason"]
    assert server.stats()["completions"] == 6 + 4 * 2  # 4 failing examples x (1 try + 1 retry), then none


def test_a_run_losing_examples_to_the_endpoint_is_failed_not_scored(tmp_path, store, capsys, mock_endpoint):
    server = mock_endpoint(faults=["ok", "ok", "ok", "ok", "503"], retry_after=0)
    spec = endpoint_spec(tmp_path / "spec.yaml", server, lm={"retries": 0})
    code, err = _run(capsys, spec, store)
    assert code == 1 and "4 of 20 examples (20.0%) were lost to LM call failures" in err
    [run] = store.runs()
    got = store.client().get_run(run["run_id"]).data
    assert run["status"] == "FAILED" and got.metrics["lm_error_rate"] == pytest.approx(0.2)
    code, err = _run(capsys, spec, store, "eval.max_lm_error_rate=0.25")  # the team accepts 25%
    assert code == 0 and sorted(r["status"] for r in store.runs()) == ["FAILED", "FINISHED"]


def test_client_side_rate_limit_is_shared_by_threads_and_reported(tmp_path, store, capsys, mock_endpoint,
                                                                   monkeypatch):
    from workbench.lm.openai_compat import OpenAICompatBackend

    sent: list[float] = []  # when each request left the client, after the limiter let it go
    generate = OpenAICompatBackend._generate

    def timed(self, *args):
        sent.append(time.monotonic())
        return generate(self, *args)

    monkeypatch.setattr(OpenAICompatBackend, "_generate", timed)
    server = mock_endpoint(latency=0.01)
    spec = endpoint_spec(tmp_path / "spec.yaml", server, test=30, eval={"threads": 8},
                         lm={"max_requests_per_minute": 600})  # 10 per second, after a one-second burst
    code, err = _run(capsys, spec, store)
    assert code == 0, err
    [run] = store.runs()
    assert _metrics(store, run["run_id"])["lm_wait_seconds"] > 0
    assert len(server.times) == 30
    # Send times, not the in-process server's arrival times: under a loaded `make test` the server
    # thread can be scheduled late and record a second of spaced requests as one burst. Whatever the
    # load, call k (after the burst of 11) leaves no sooner than its slot, give or take one slot for
    # when the first call left (without the limit: all within ~0.1 s).
    times = sorted(sent)
    assert len(times) == 30
    early = [k for k in range(11, 30) if times[k] - times[0] < (k - 11) * 0.1]
    assert early == [], [round(t - times[0], 3) for t in times]
    assert times[-1] - times[0] >= 1.8


def test_an_endpoint_echoing_the_key_has_it_masked(mock_endpoint, monkeypatch):
    server = mock_endpoint(api_key="sk-the-right-one")
    monkeypatch.setenv("WB_ECHO_KEY", "sk-echoed-secret-123")
    backend = _backend(server, api_key_env="WB_ECHO_KEY")
    with pytest.raises(Exception) as caught:
        _ask(backend)
    assert "sk-echoed-secret-123" not in str(caught.value) and "Incorrect API key provided: ***" in str(caught.value)


def test_a_sweep_against_a_dead_endpoint_is_refused_before_the_study(tmp_path, store, capsys):
    from tests.conftest import ROOT

    port = free_port()
    code = main(["sweep", str(ROOT / "experiments" / "sweep_routing_clinc150.yaml"), "--trials", "2",
                 "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--set", "lm.backend=openai",
                 "--set", f"lm.api_base=http://127.0.0.1:{port}/v1", "--set", "lm.model=m",
                 *sum((["--set", o] for o in store.overrides), [])])
    assert code == 2 and "lm.api_base: cannot reach" in _one_line(capsys.readouterr().err)
    assert store.runs() == [] and not (tmp_path / "optuna.db").exists()


def test_an_endpoint_dead_during_compile_stops_the_optimizer(tmp_path, store, capsys, mock_endpoint):
    server = mock_endpoint(down_after=0)  # the model list answers (preflight passes); every completion is dropped
    spec = endpoint_spec(tmp_path / "spec.yaml", server, lm={"retries": 0},
                         optimizer={"name": "BootstrapFewShot", "params": {"max_bootstrapped_demos": 2}},
                         eval={"max_consecutive_lm_errors": 3})
    code, err = _run(capsys, spec, store)
    assert code == 1 and "BootstrapFewShot stopped" in err and "in a row" in err, err
    assert [r["status"] for r in store.runs() if r["name"].startswith("routing")] == ["FAILED"]
    assert server.stats()["completions"] <= 5  # the breaker stopped the calls, not the training set's size


def test_inputs_the_lm_refuses_are_the_run_s_failures_not_the_endpoint_s(tmp_path, store, capsys, mock_endpoint):
    server = mock_endpoint(faults=["ok", "ok", "ok", "ok", "400"])
    code, err = _run(capsys, endpoint_spec(tmp_path / "spec.yaml", server), store)
    assert code == 0, err  # a 400 is not retried, not an outage, and does not fail the run
    [run] = store.runs()
    metrics = _metrics(store, run["run_id"])
    assert run["status"] == "FINISHED" and metrics["lm_error_rate"] == 0 and metrics["failure_rate"] == 0.2
    assert "'lm_refused': 4" in err


def test_an_lm_refusing_every_input_fails_the_run(tmp_path, store, capsys, mock_endpoint):
    server = mock_endpoint(faults=["400"])  # e.g. the endpoint rejects the response_format on every call
    code, err = _run(capsys, endpoint_spec(tmp_path / "spec.yaml", server, test=5), store)
    assert code == 1 and "refused every one of the 5 examples" in err and "lm.response_format" in err
    assert [r["status"] for r in store.runs()] == ["FAILED"]
