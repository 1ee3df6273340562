"""`workbench run SPEC --resume RUN_ID`: continue a run that was killed or failed, in the same
MLflow run.

Nothing is replayed from MLflow: the run starts again from the spec, and what it already paid
for comes back for free — every completed LM call from the response cache (the requests are
the same because the spec, data and seeds are), and GEPA's search from its own checkpoint
folder, kept beside the run's artifacts (`checkpoint_dir`). The checks come before any LM call:
the run must exist in the spec's store, be a `workbench run` of this very spec (its
fingerprint: everything but tracking, budget and description) on the same data, and not have
finished or be still running.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from urllib.parse import urlparse

from workbench.errors import UserError

SPEC_TAG = "workbench.spec_fingerprint"


def spec_fingerprint(spec) -> str:
    """16 hex digits over what decides a run's LM requests and results."""
    data = spec.model_dump(mode="json", exclude={"source", "search", "tracking", "budget", "description"})
    data.get("eval", {}).pop("threads", None)  # more threads: the same requests, sooner
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def check(spec, run_id: str, reporter) -> dict[str, str]:
    """Refuse (exit 2) a run that cannot be resumed with this spec; warn when resuming cannot
    reuse the completed calls. Returns the run's tags."""
    from workbench.tracking import HOST_TAG, PID_TAG, RUN_KIND_TAG, _process_alive, client

    field = "--resume"
    if not spec.tracking.enabled:
        raise UserError("--resume continues an MLflow run; this spec has tracking.enabled: false", field=field)
    try:
        run = client(spec.tracking.uri).get_run(run_id)
    except Exception:  # noqa: BLE001  MLflow raises its own exception for an unknown id
        raise UserError(f"no run {run_id!r} in {spec.tracking.uri}", field=field) from None
    tags, status = run.data.tags, run.info.status
    if tags.get(RUN_KIND_TAG) != "run":
        raise UserError(f"run {run_id} is a {tags.get(RUN_KIND_TAG, 'non-workbench')} run; only `workbench run` runs "
                        "resume", field=field)
    if status == "FINISHED":
        raise UserError(f"run {run_id} is FINISHED: nothing to resume (start a new run)", field=field)
    pid = tags.get(PID_TAG, "")
    if status == "RUNNING" and tags.get(HOST_TAG) == socket.gethostname() and pid.isdigit() \
            and _process_alive(int(pid)):
        raise UserError(f"run {run_id} is still running (process {pid}); stop it first", field=field)
    theirs, mine = tags.get(SPEC_TAG), spec_fingerprint(spec)
    if theirs != mine:
        raise UserError(f"run {run_id} was started from another spec (fingerprint {theirs or 'missing'}, this spec "
                        f"{mine}); resume it with the spec it ran", file=spec.source, field=field)
    if not spec.lm.cache:
        reporter.warn("lm.cache is off: the resumed run repeats every LM call the killed one made")
    return tags


def check_data(run_id: str, tags: dict[str, str], fingerprint: str, spec) -> None:
    theirs = tags.get("workbench.dataset_fingerprint")
    if theirs and theirs != fingerprint:
        raise UserError(f"the data changed since run {run_id} (fingerprint {theirs}, now {fingerprint}); start a new "
                        "run", file=spec.source, field="--resume")


# Optimizers that keep a checkpoint folder (GEPA's log_dir); only they cost the artifact lookup.
CHECKPOINTING = {"GEPA", "finetune", "BootstrapFinetune"}


def needs_checkpoints(optimizer_name: str, params: dict) -> bool:
    from workbench.optimize.sequence import steps_of

    return any(name in CHECKPOINTING for name, _ in steps_of(optimizer_name, params))


def checkpoint_dir(mlflow_client, run_id: str) -> Path:
    """Where optimizers keep their checkpoints for this run: inside the run's own artifact folder
    when the artifact store is a local folder, else in a local folder named after the run. Like
    the LM cache, it is on this machine: a run resumes where it was killed."""
    uri = mlflow_client.get_run(run_id).info.artifact_uri
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path) / "checkpoints"
    from workbench.paths import cache_dir

    return cache_dir() / "checkpoints" / run_id
