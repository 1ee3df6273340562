"""`workbench cache info|clear` through the real CLI on a cache of its own: entries per model,
the last run's hit rate, clearing by age, and a clear refused while another process uses it."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import ROOT, SPEC, run_cli, run_main

FAST = ["lm.backend=recorded", "lm.model=synthetic", "lm.cache=true", "dataset.train=500", "dataset.dev=10",
        "dataset.test=30", "metric.summaries=[]"]


def _run(store, env) -> dict[str, float]:
    result = run_cli("run", str(SPEC), "--quiet", *[a for o in [*FAST, *store.overrides] for a in ("--set", o)],
                     env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    run_id = result.stdout.split("run_id=")[1].split()[0]
    return store.client().get_run(run_id).data.metrics


def test_info_hit_rate_and_clear(store, tmp_path, monkeypatch):
    env = {"WORKBENCH_CACHE": str(tmp_path / "cache")}
    monkeypatch.setenv("WORKBENCH_CACHE", env["WORKBENCH_CACHE"])  # for the in-process cache commands
    cold = _run(store, env)
    assert cold["lm_requests"] == 30 and cold["lm_cache_hits"] == 0
    warm = _run(store, env)
    assert warm["lm_cache_hits"] == 30 and warm["cache_hit_rate"] == 1.0 and warm["lm_calls"] == 0
    copy = tmp_path / "models" / "base-0123456789abcdef"  # as fine-tuning leaves its base model's copy
    copy.mkdir(parents=True)
    (copy / "model.safetensors").write_bytes(b"\0" * 3 * 1024 * 1024)
    (tmp_path / "models" / "base-fedcba9876543210.tmp-1").mkdir()  # one being written: not listed
    info = run_cli("cache", "info", "--tracking-uri", store.uri,
                   env={**env, "WORKBENCH_MODELS": str(tmp_path / "models")})  # once through a real process
    assert info.returncode == 0, info.stderr
    assert str(tmp_path / "cache" / "dspy") in info.stdout
    assert f"converted models: {tmp_path / 'models'} (3.0 MB" in info.stdout
    assert "3.0 MB  base-0123456789abcdef" in info.stdout
    assert ".tmp-" not in info.stdout
    assert "recorded/synthetic-" in info.stdout and "30 of 30 LM requests answered from the cache (100%)" in info.stdout
    kept = run_main("cache", "clear", "--older-than", "1")
    assert kept.returncode == 0 and "removed 0 entries older than 1 days" in kept.stdout
    cleared = run_main("cache", "clear")
    assert cleared.returncode == 0 and "removed 30 entries" in cleared.stdout, cleared.stdout
    assert _run(store, env)["lm_cache_hits"] == 0  # nothing left to answer from


def test_clear_refuses_while_another_process_uses_the_cache(store, tmp_path, monkeypatch):
    env = {"WORKBENCH_CACHE": str(tmp_path / "cache")}
    monkeypatch.setenv("WORKBENCH_CACHE", env["WORKBENCH_CACHE"])
    _run(store, env)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom workbench.lm.build import configure_cache\n"
                               "configure_cache(); print('held', flush=True); time.sleep(60)"],
                              cwd=ROOT, env={**__import__("os").environ, **env}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = run_cli("cache", "clear", env=env)
        assert refused.returncode == 2
        assert refused.stderr.strip().count("\n") == 0 and "another workbench process is using the cache" in refused.stderr
    finally:
        holder.kill()
        holder.wait(timeout=10)
    info = run_main("cache", "info", "--tracking-uri", store.uri)
    assert "30 entries" in info.stdout  # nothing was deleted
    time.sleep(0.1)
    assert run_main("cache", "clear").returncode == 0  # the holder is gone: the lock went with it
    bad = run_main("cache", "clear", "--older-than", "-1")
    assert bad.returncode == 2 and "--older-than: must be 0 or more" in bad.stderr
