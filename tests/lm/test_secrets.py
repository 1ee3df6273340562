"""An API key given through `lm.api_key_env` appears nowhere but in the request header."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.conftest import endpoint_spec, run_cli


def _files_containing(folder: Path, needle: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_the_key_never_reaches_mlflow_bundles_cache_or_console(tmp_path, store, mock_endpoint):
    sentinel = f"sk-SENTINEL-{uuid.uuid4().hex}"
    server = mock_endpoint(api_key=sentinel)
    spec = endpoint_spec(tmp_path / "spec.yaml", server, test=12, lm={"api_key_env": "WB_SECRET_KEY", "cache": True})
    cache = tmp_path / "cache"
    env = {"WB_SECRET_KEY": sentinel, "WORKBENCH_CACHE": str(cache)}
    sets = sum((["--set", o] for o in store.overrides), [])
    outputs = []

    ran = run_cli("run", str(spec), *sets, env=env)
    outputs.append(ran.stdout + ran.stderr)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert f"Bearer {sentinel}" in server.authorizations  # the key did go where it belongs
    [run] = store.runs()
    bundle = tmp_path / "bundle"
    exported = run_cli("export", run["run_id"], "--out", str(bundle), "--tracking-uri", store.uri, env=env)
    outputs.append(exported.stdout + exported.stderr)
    assert exported.returncode == 0, exported.stderr[-2000:]

    # a rejected key (the endpoint's error text echoes it, as some APIs do) and a mid-run failure
    wrong = f"sk-WRONG-{uuid.uuid4().hex}"
    rejected = run_cli("run", str(spec), *sets, env={**env, "WB_SECRET_KEY": wrong})
    outputs.append(rejected.stdout + rejected.stderr)
    assert rejected.returncode == 2 and "lm.api_key_env" in rejected.stderr
    server.down_after = 0  # from now on every completion drops the connection
    dying = run_cli("run", str(spec), *sets, "--set", "lm.cache=false", "--set", "lm.retries=0",
                    "--set", "eval.max_consecutive_lm_errors=3", env=env)
    outputs.append(dying.stdout + dying.stderr)
    assert dying.returncode == 1

    for secret in (sentinel, wrong):
        for text in outputs:
            assert secret not in text
        for folder in (store.root, bundle, cache):
            assert _files_containing(folder, secret.encode()) == [], folder
    assert not any(sentinel in v for v in os.environ.values())  # the test process never held it either
