"""`workbench export RUN --out DIR`: a finished run's compiled program as a verified bundle.

The bundle is written to a hidden sibling folder, loaded back from there exactly as a
service would load it, and re-evaluated on the run's evaluation examples. Only when the
reloaded program scores what the run measured (within a tolerance) is the folder moved
into place; on any failure it is removed, so no partial bundle is ever left on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from workbench import program_contract as contract
from workbench.console import Reporter
from workbench.errors import RunFailed, UserError
from workbench.export.bundle import LORA_FILE, write_json, write_manifest
from workbench.export.loaded import load, source_digest
from workbench.finetune.gguf_lora import run_adapter
from workbench.tracking import RUN_KIND_TAG, default_uri

BUNDLE_README = """# {name}: an exported dspy-workbench program

Exported from MLflow run `{run_id}` ({experiment}). Score on its evaluation examples:
{metric} {score:.4f} (95% CI [{ci_low:.4f}, {ci_high:.4f}], n = {n}); re-evaluated after reloading: {verified:.4f}.

    import workbench
    program = workbench.load("{folder}")
    program({example})

or over HTTP: `workbench serve {folder}`. Review `prompts.md` for what the LM is told;
`manifest.json` holds the SHA-256 of every file, checked on every load.
"""


class ExportDrift(RunFailed):
    """The reloaded bundle does not score what the run measured; nothing was written."""


@dataclass
class ExportResult:
    path: Path
    run_id: str
    score: float
    verified_score: float
    n: int
    seconds: float
    bundle_bytes: int = 0
    load_seconds: float = 0.0


def find_run(client, ref: str):
    """A finished run with a compiled program: a run id (or 8+ character prefix), or an
    experiment name (its best-scoring such run), or a logged model `models:/m-<id>` (its source run)."""
    from workbench.comparison.runs import resolve

    runs = resolve(client, [ref])
    if len(runs) > 1:  # an experiment name: take its best exportable run
        runs = [r for r in runs if "score" in r.data.metrics and _has_program(client, r.info.run_id)]
        if not runs:
            raise UserError(f"experiment {ref!r} has no finished run with a compiled program", field="RUN")
        runs.sort(key=lambda r: r.data.metrics["score"], reverse=True)
    run = runs[0]
    if run.info.status != "FINISHED":
        raise UserError(f"run {run.info.run_id} is {run.info.status}; only finished runs can be exported", field="RUN")
    if not _has_program(client, run.info.run_id):
        kind = run.data.tags.get(RUN_KIND_TAG, "?")
        raise UserError(f"run {run.info.run_id} has no compiled program (no program.json; it is a {kind!r} run)",
                        field="RUN")
    return run


def _has_program(client, run_id: str) -> bool:
    return "program.json" in {a.path for a in client.list_artifacts(run_id)}


@contextlib.contextmanager
def staged(out: Path):
    """A hidden sibling folder to write into: moved into place as `out` when the block succeeds,
    removed on any failure, so no partial export is ever left on disk."""
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a folder", file=str(out), field="--out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError("exists and is not empty; choose another folder or pass --force to replace it",
                        file=str(out), field="--out")


def signatures(program: dspy.Module) -> dict[str, Any]:
    def fields(items) -> list[dict[str, str]]:
        return [{"name": name, "type": str(getattr(info.annotation, "__name__", info.annotation)).replace("typing.", ""),
                 "desc": (info.json_schema_extra or {}).get("desc", "")} for name, info in items.items()]

    return {name: {"instructions": p.signature.instructions, "inputs": fields(p.signature.input_fields),
                   "outputs": fields(p.signature.output_fields)} for name, p in program.named_predictors()}


def lm_settings(spec) -> dict[str, Any]:
    """The spec's LM settings; credentials in an api_base URL are dropped (keys travel only
    as the name of an environment variable)."""
    from urllib.parse import urlsplit, urlunsplit

    settings = spec.lm.model_dump(mode="json")
    if settings.get("api_base"):
        parts = urlsplit(settings["api_base"])
        if parts.username or parts.password:
            settings["api_base"] = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    return settings


def _write_files(folder: Path, client, run, prepared, program: dspy.Module, max_corpus_bytes: int | None) -> None:
    from workbench.prompts import render_program

    spec, data = prepared.spec, prepared.data
    cls = type(program)
    if not contract.is_exportable(program):
        raise UserError(f"program {spec.program.name!r} ({cls.__name__}) cannot be exported yet: its class has no "
                        "export_config()", field="RUN")
    config = program.export_config()
    if contract.has_bundle_files(program):  # a corpus and its indexes, tool records: named in the config
        config["files"] = program.export_files(folder, max_corpus_bytes=max_corpus_bytes)
    write_json(folder / "program.json", program.dump_state())
    write_json(folder / "program_config.json", {
        "class": f"{cls.__module__}.{cls.__name__}", "registry_name": spec.program.name,
        "config": config, "inputs": list(data.input_fields),
        "outputs": list(dict.fromkeys([data.output_field or data.label_field, *contract.table_fields(program),
                                       *contract.serve_fields(program)])),
        "source_sha256": source_digest(cls)})
    write_json(folder / "signatures.json", signatures(program))
    settings, spec_json = lm_settings(spec), spec.model_dump(mode="json")
    if spec.lm.lora:  # the fine-tuned weights travel with the program, checksummed like every file
        source = Path(spec.lm.lora)
        shutil.copyfile(source, folder / LORA_FILE)
        if source.parent.resolve() == folder.resolve():  # downloaded from the run into the staging folder
            source.unlink()
        settings["lora"] = spec_json["lm"]["lora"] = LORA_FILE
    write_json(folder / "lm.json", settings)
    write_json(folder / "spec.json", spec_json)
    (folder / "prompts.md").write_text(render_program(program), encoding="utf-8")
    try:  # lands as folder/prompt_example.md; older runs have none (it is optional)
        client.download_artifacts(run.info.run_id, "prompt_example.md", str(folder))
    except Exception:  # noqa: BLE001
        pass


def _report(run, spec, verified: float, tolerance: float, n: int, seconds: float) -> dict[str, Any]:
    m = run.data.metrics
    return {"metric": spec.metric.name, "split": spec.eval.split, "score": m["score"],
            "ci": [m.get("score_ci_low"), m.get("score_ci_high")], "n": n, "failures": int(m.get("failures", 0)),
            "verified_score": verified, "tolerance": tolerance, "verify_seconds": round(seconds, 2),
            "eval_fingerprint": run.data.tags.get("workbench.eval_fingerprint", ""),
            "baselines": {k.split(".")[1]: v for k, v in m.items() if k.startswith("baseline.") and k.endswith(".score")}}


def reevaluate(loaded, prepared, reporter: Reporter) -> tuple[float, int]:
    """The reloaded program's mean score on the run's evaluation examples."""
    from workbench.evaluate import evaluate
    from workbench.run_parts import metric_fns

    _, scored, _ = metric_fns(prepared.spec)
    data = prepared.data
    with dspy.context(lm=loaded.lm, adapter=loaded.adapter), \
            reporter.progress("re-evaluating the reloaded bundle", len(prepared.evalset)) as update:
        result = evaluate(loaded.program, prepared.evalset, scored, output_field=data.output_field or data.label_field,
                          gold_field=data.label_field, usage=loaded.lm.engine.usage, on_progress=update,
                          threads=prepared.spec.eval.threads)
    return result.score, result.n


def bundle_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def load_run(client, run, scratch: Path):
    """The run's spec, data and compiled program rebuilt from its artifacts (downloaded to
    `scratch`, then removed); refused when the dataset or the evaluation items changed."""
    from workbench.runner import load_program_state, prepare
    from workbench.spec import validate

    run_id = run.info.run_id
    spec_file = Path(client.download_artifacts(run_id, "spec.json", str(scratch)))
    spec_data = json.loads(spec_file.read_text(encoding="utf-8"))
    spec_file.unlink()
    if (spec_data.get("lm") or {}).get("lora"):  # the adapter `finetune` trained, as the run logged it
        spec_data["lm"]["lora"] = run_adapter(client, run_id, spec_data["lm"]["lora"], scratch)
    spec = validate(spec_data, f"run {run_id[:12]} spec.json")
    prepared = prepare(spec)
    recorded_data = run.data.tags.get("workbench.dataset_fingerprint")
    if recorded_data and recorded_data != prepared.data.fingerprint:
        raise UserError(f"the dataset {prepared.data.name!r} (its files or corpus) changed since run {run_id[:12]}: "
                        f"fingerprint then {recorded_data}, now {prepared.data.fingerprint}; the bundle would not "
                        "be the program the run measured (re-run the spec, then export)", field="RUN")
    eval_ids = ",".join(str(e.get("id", "")) for e in prepared.evalset)
    if hashlib.sha256(eval_ids.encode()).hexdigest()[:16] != run.data.tags.get("workbench.eval_fingerprint"):
        raise UserError(f"run {run_id[:12]}'s evaluation examples cannot be rebuilt (the dataset or sampling "
                        "changed since the run), so the export cannot be verified", field="RUN")
    state_file = Path(client.download_artifacts(run_id, "program.json", str(scratch)))
    load_program_state(prepared.program, state_file)
    state_file.unlink()
    return prepared


def export_run(ref: str, out: str | Path, *, force: bool = False, tolerance: float = 0.01,
               tracking_uri: str | None = None, reporter: Reporter | None = None,
               max_corpus_mb: float = 500.0) -> ExportResult:
    """Export run `ref` to folder `out` (see the module docstring)."""
    from workbench.comparison.runs import client_for

    reporter = reporter or Reporter(quiet=True)
    if not 0 <= tolerance <= 1:
        raise UserError(f"must be between 0 and 1, got {tolerance}", field="--tolerance")
    if not max_corpus_mb > 0:
        raise UserError(f"must be above 0, got {max_corpus_mb}", field="--max-corpus-mb")
    out = Path(out)
    check_target(out, force)
    tracking_uri = tracking_uri or default_uri()  # flag > environment > default
    client = client_for(tracking_uri)
    run = find_run(client, ref)
    run_id = run.info.run_id
    start = time.perf_counter()
    with staged(out) as staging:
        prepared = load_run(client, run, staging)
        spec = prepared.spec
        _write_files(staging, client, run, prepared, prepared.program, int(max_corpus_mb * 1e6))
        write_json(staging / "report.json", {})  # placeholder so the first manifest covers it
        dataset = {"name": prepared.data.name, "fingerprint": prepared.data.fingerprint}
        experiment = client.get_experiment(run.info.experiment_id).name
        program_class = json.loads((staging / "program_config.json").read_text())["class"]
        write_manifest(staging, run_id=run_id, experiment=experiment, program_class=program_class, dataset=dataset)
        load_start = time.perf_counter()
        loaded = load(staging)
        load_seconds = time.perf_counter() - load_start
        verify_start = time.perf_counter()
        verified, n = reevaluate(loaded, prepared, reporter)
        recorded = run.data.metrics.get("score")
        if recorded is None or abs(verified - recorded) > tolerance:
            raise ExportDrift(f"the reloaded program scores {verified:.4f} on the run's {n} evaluation examples but the "
                              f"run recorded {recorded}; the difference exceeds the tolerance {tolerance} (no bundle "
                              "written)")
        report = _report(run, spec, verified, tolerance, n, time.perf_counter() - verify_start)
        report.update(bundle_bytes=bundle_bytes(staging), load_seconds=round(load_seconds, 2))
        write_json(staging / "report.json", report)
        example = ", ".join(f'{name}="..."' for name in prepared.data.input_fields)
        (staging / "README.md").write_text(BUNDLE_README.format(
            name=spec.name, run_id=run_id, experiment=experiment, metric=spec.metric.name, score=report["score"],
            ci_low=report["ci"][0] or 0, ci_high=report["ci"][1] or 0, n=n, verified=verified, folder=out,
            example=example), encoding="utf-8")
        write_manifest(staging, run_id=run_id, experiment=experiment, program_class=program_class, dataset=dataset)
    return ExportResult(out, run_id, float(recorded), verified, n, time.perf_counter() - start,
                        report["bundle_bytes"], load_seconds)

