"""Export -> bundle -> load against real MLflow runs (recorded LM), and every way it must refuse."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_cli, run_main


def test_bundle_has_every_file_checksummed_and_no_secret(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    for name in ("program.json", "program_config.json", "signatures.json", "lm.json", "prompts.md", "spec.json",
                 "report.json", "README.md", "prompt_example.md"):
        assert name in manifest["files"], name
    assert set(manifest["files"]) == {p.relative_to(bundle).as_posix() for p in bundle.rglob("*")
                                      if p.is_file() and p.name != "manifest.json"}
    assert manifest["versions"]["dspy"].startswith("3.4")
    assert manifest["program_class"] == "programs.routing.Router"
    report = json.loads((bundle / "report.json").read_text())
    assert report["n"] == 24 and abs(report["verified_score"] - report["score"]) <= report["tolerance"]
    assert "baselines" in report and report["baselines"]
    lm = json.loads((bundle / "lm.json").read_text())
    assert lm["backend"] == "recorded" and "api_key" not in lm
    assert "## Predictor `predict`" in (bundle / "prompts.md").read_text()
    assert not list(bundle.parent.glob(".*partial*"))  # the staging folder is gone


def test_loaded_bundle_predicts_what_the_run_measured(bundle, routing_store):
    import workbench

    store, runs = routing_store
    program = workbench.load(bundle)
    frame = store.predictions(runs["good"])
    for row in frame[:6]:
        prediction = program(text=row["text"])
        assert prediction.label == row["predicted"]
    assert program.predict({"text": frame[0]["text"]})["label"] in json.loads(
        (bundle / "program_config.json").read_text())["config"]["labels"]
    assert program.inputs == ["text"] and "Instructions" in program.prompts()


@pytest.mark.parametrize("change, message", [
    (lambda b: (b / "prompts.md").write_text("tampered"), "SHA-256 does not match"),
    (lambda b: (b / "program.json").unlink(), "missing"),
    (lambda b: _edit_manifest(b, format_version=99), "newer than this workbench reads"),
    (lambda b: _edit_manifest(b, versions={"dspy": "2.6.0"}), "exported with dspy 2.6.0"),
    (lambda b: (b / "manifest.json").unlink(), "not a workbench bundle"),
])
def test_untrusted_bundles_are_refused(bundle, tmp_path, change, message):
    import workbench
    from workbench.export import BundleError

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    change(copy)
    with pytest.raises(BundleError, match=message):
        workbench.load(copy)
    result = run_main("serve", str(copy), "--port", "1")  # refused before binding anything
    assert result.returncode == 2 and message.split()[0] in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _edit_manifest(folder, **changes):
    manifest = json.loads((folder / "manifest.json").read_text())
    for key, value in changes.items():
        manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_bad_export_requests_exit_2_and_write_nothing(routing_store, bundle, tmp_path):
    store, runs = routing_store
    cases = [
        (["export", "0123456789abcdef", "--out", str(tmp_path / "a")], "neither an experiment nor a run id"),
        (["export", runs["good"], "--out", str(bundle)], "not empty"),
        (["export", runs["good"], "--out", str(tmp_path / "b"), "--tolerance", "-1"], "--tolerance"),
    ]
    client = store.client()
    no_program = client.create_run(client.get_run(runs["good"]).info.experiment_id, run_name="empty").info.run_id
    client.set_terminated(no_program)
    cases.append((["export", no_program, "--out", str(tmp_path / "c")], "no compiled program"))
    for i, (args, message) in enumerate(cases):  # the first through a real process, the rest in this one
        result = (run_cli if i == 0 else lambda *a: run_main(*a))(*args, "--tracking-uri", store.uri)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_force_replaces_a_bundle(routing_store, bundle, tmp_path):
    store, runs = routing_store
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    (target / "stale.txt").write_text("old")
    result = run_main("export", runs["good"], "--out", str(target), "--force", "--tracking-uri", store.uri)
    assert result.returncode == 0, result.stderr
    assert not (target / "stale.txt").exists() and (target / "manifest.json").is_file()


def test_score_drift_fails_the_export_and_removes_the_bundle(routing_store, tmp_path):
    """A run whose recorded score the reloaded program does not reproduce is never shipped."""
    store, runs = routing_store
    client = store.client()
    recorded = client.get_run(runs["zero_shot"]).data.metrics["score"]
    client.log_metric(runs["zero_shot"], "score", recorded + 0.25)  # what the run claims no longer holds
    try:
        target = tmp_path / "drifted"
        result = run_main("export", runs["zero_shot"], "--out", str(target), "--tracking-uri", store.uri)
        assert result.returncode == 1, result.stderr
        assert "exceeds the tolerance" in result.stderr and "Traceback" not in result.stderr
        assert list(tmp_path.iterdir()) == []  # neither the bundle nor its staging folder
    finally:
        client.log_metric(runs["zero_shot"], "score", recorded)
