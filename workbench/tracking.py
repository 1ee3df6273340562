"""MLflow tracking: the one module that opens MLflow clients and runs; no run left RUNNING.

Every client is bound to an explicit store URI (tracking and registry alike: never to a
process-wide default another command set), every run is created by `create_run` with its
`workbench.kind` (run, eval, trial, sweep, multi_seed, comparison, promote), and every run a
command opens and closes itself goes through `tracked_run`.

The store defaults to `sqlite:///mlruns/mlflow.db` with artifacts under `mlruns/artifacts`.
Experiments are created with the `custom_model_development` kind so the MLflow UI opens
on runs, metric charts and the compare view. `TrackedRun` ends its run FINISHED, FAILED
on an exception, or KILLED on Ctrl-C / SIGTERM; a run whose process died hard is marked
FAILED by the next run in its experiment (`reap_dead_runs`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UserError
from workbench.paths import project_root

if TYPE_CHECKING:
    import pandas as pd

    from workbench.spec import TrackingSpec

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
EXPERIMENT_KIND = "custom_model_development"
RUN_KIND_TAG = "workbench.kind"
HOST_TAG = "workbench.host"
PID_TAG = "workbench.pid"


def resolve_uri(uri: str) -> str:
    """Make a relative sqlite path absolute (against the current directory) and create its folder."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri.removeprefix("sqlite:///")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def default_uri() -> str:
    """The store used when neither a --tracking-uri flag nor the spec names one:
    $WORKBENCH_TRACKING_URI, else MLflow's own $MLFLOW_TRACKING_URI, else the project's SQLite file.
    (The one precedence rule of every command: flag > spec > environment > default.)"""
    return os.environ.get("WORKBENCH_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def client(uri: str, *, must_exist: bool = False):
    """An MlflowClient bound to `uri` (never to a process-wide default). `must_exist`: a
    SQLite store that is not there yet is the user's error (nothing to read), not a new file."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if must_exist and uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise UserError(f"no MLflow store at {uri} (run something first)", field="--tracking-uri")
    from mlflow.tracking import MlflowClient

    resolved = resolve_uri(uri)
    mlflow_client = MlflowClient(tracking_uri=resolved, registry_uri=resolved)
    return PatientClient(mlflow_client) if resolved.startswith(("http://", "https://")) else mlflow_client


PATIENCE_SECONDS = float(os.environ.get("WORKBENCH_TRACKING_PATIENCE", "60"))
_TRANSIENT = re.compile(r"failed with exception|failed with error code 5\d\d|TEMPORARILY_UNAVAILABLE")


class PatientClient:
    """An MlflowClient for a tracking server that waits out a brief outage: a call that fails to
    connect (or gets a 5xx) is tried again with backoff for up to `WORKBENCH_TRACKING_PATIENCE`
    seconds (60), whatever MLflow's own `MLFLOW_HTTP_REQUEST_MAX_RETRIES` says. A server gone for
    longer ends the command with one line naming the server, not a traceback."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def patient(*args, **kwargs):
            import time

            from mlflow.exceptions import MlflowException

            deadline, pause = time.monotonic() + PATIENCE_SECONDS, 0.5
            while True:
                try:
                    return attr(*args, **kwargs)
                except MlflowException as exc:
                    if not _TRANSIENT.search(str(exc)):
                        raise
                    if time.monotonic() + pause > deadline:
                        raise UserError(f"the tracking server {self._inner.tracking_uri} did not answer for "
                                        f"{PATIENCE_SECONDS:g} s ({name})", field="tracking.uri") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 8.0)

        return patient


def configure(tracking: TrackingSpec):
    """Point MLflow's fluent API (autologging, model logging) at the spec's store; returns a client."""
    return use_store(tracking.uri)


def use_store(uri: str):
    """Make `uri` this process's store for MLflow's fluent API too (tracking and registry); a client for it."""
    import mlflow

    warnings.filterwarnings("ignore", module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    resolved = resolve_uri(uri)
    # MLflow also writes the URI into $MLFLOW_TRACKING_URI / $MLFLOW_REGISTRY_URI; put back the
    # user's own, so a store one call used never becomes the default of the next (default_uri).
    previous = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    for key, value in previous.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return client(resolved)


def get_or_create_experiment(client, name: str, artifact_root: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    # A tracking server keeps artifacts where it is configured to (proxied for every client);
    # a file or database store keeps them under artifact_root on this disk.
    served = str(getattr(client, "tracking_uri", "") or "").startswith(("http://", "https://"))
    location = None if served else (Path(artifact_root).resolve() / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location, tags={"mlflow.experimentKind": EXPERIMENT_KIND})
    except MlflowException:  # another process created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_root(),
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{commit}{'-dirty' if dirty else ''}" if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so the run ends KILLED like on Ctrl-C."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(_Terminated()))
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class TrackedRun:
    """A started MLflow run plus helpers that log the workbench's artifacts."""

    def __init__(self, client, run_id: str):
        self.client = client
        self.run_id = run_id
        # model_id / dataset_name / dataset_digest every metric is logged with (the run's LoggedModel
        # and evaluation dataset, once they exist): MLflow's model page then shows the scores.
        self.metric_links: dict[str, str] = {}

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step, **self.metric_links)
                 for k, v in metrics.items() if v is not None and v == v]
        for start in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[start:start + 500])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def log_dict(self, data: Any, path: str) -> None:
        self.client.log_text(self.run_id, json.dumps(data, indent=2, default=str), path)

    def log_file(self, local: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local), folder)

    def log_dir(self, local: Path, folder: str) -> None:
        self.client.log_artifacts(self.run_id, str(local), folder)

    def log_table(self, frame: pd.DataFrame, path: str) -> None:
        self.client.log_table(self.run_id, data=frame, artifact_file=path)

    def log_csv(self, frame: pd.DataFrame, path: str) -> None:
        self.client.log_text(self.run_id, frame.to_csv(), path)

    def log_figure(self, figure, path: str) -> None:
        import matplotlib.pyplot as plt

        self.client.log_figure(self.run_id, figure, path)
        plt.close(figure)

    def artifact_path(self, path: str) -> Path | None:
        """The local path of an artifact when the store is on this disk."""
        uri = self.client.get_run(self.run_id).info.artifact_uri
        if uri.startswith("file://"):
            return Path(uri.removeprefix("file://")) / path
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def reap_dead_runs(client, experiment_id: str) -> list[str]:
    """Mark FAILED the RUNNING runs started on this host by a process that no longer exists.

    A hard crash (segfault in native code, OOM kill, SIGKILL) leaves no chance to end a run;
    the next run in the same experiment ends it instead, tagged `workbench.reaped`.
    """
    host = socket.gethostname()
    stale = client.search_runs([experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
                               max_results=200)
    reaped = []
    for run in stale:
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            client.set_tag(run.info.run_id, "workbench.reaped", f"process {pid} died without ending the run")
            client.set_terminated(run.info.run_id, "FAILED")
            reaped.append(run.info.run_id)
    return reaped


def create_run(mlflow_client, experiment_id: str, *, kind: str, run_name: str, tags: dict[str, str] | None = None,
               parent_run_id: str | None = None):
    """A new RUNNING run of `kind`, with the tags every workbench run carries (git commit, the
    host and process that own it, so a dead owner's run can be reaped; the lock file's digest and
    the versions that matter, workbench.environment)."""
    from workbench.environment import run_tags

    all_tags = {"mlflow.runName": run_name, "mlflow.source.git.commit": git_commit(), **run_tags(),
                HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), **(tags or {}), RUN_KIND_TAG: kind}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    return mlflow_client.create_run(experiment_id, run_name=run_name, tags=all_tags)


def reopen_run(mlflow_client, run_id: str, tags: dict[str, str] | None = None):
    """A killed or failed run RUNNING again, owned by this process, its resume counted."""
    run = mlflow_client.get_run(run_id)
    count = int(run.data.tags.get("workbench.resumed", "0") or 0) + 1
    keep = {k: v for k, v in (tags or {}).items() if k != "mlflow.runName"}
    for key, value in {**keep, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
                       "workbench.resumed": str(count)}.items():
        mlflow_client.set_tag(run_id, key, value)
    mlflow_client.update_run(run_id, status="RUNNING")
    return mlflow_client.get_run(run_id)


@contextlib.contextmanager
def tracked_run(tracking: TrackingSpec, *, kind: str, experiment: str, run_name: str,
                tags: dict[str, str] | None = None, parent_run_id: str | None = None, resume_run_id: str | None = None):
    """Start a run of `kind` (or reopen `resume_run_id`, checked by workbench.resume); end it
    FINISHED, FAILED (exception) or KILLED (Ctrl-C, SIGTERM)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client = configure(tracking)
        experiment_id = get_or_create_experiment(mlflow_client, experiment, tracking.artifact_root)
        reap_dead_runs(mlflow_client, experiment_id)
        if resume_run_id:
            run = reopen_run(mlflow_client, resume_run_id, tags)
        else:
            run = create_run(mlflow_client, experiment_id, kind=kind, run_name=run_name, tags=tags,
                             parent_run_id=parent_run_id)
    except MlflowException as exc:
        raise UserError(f"cannot open the MLflow store: {str(exc).splitlines()[0]}", field="tracking.uri") from None
    run_id = run.info.run_id
    status = "FAILED"
    try:
        # An active fluent run lets MLflow's DSPy autologging nest optimizer trials under it.
        with _sigterm_as_interrupt(), mlflow.start_run(run_id=run_id, nested=bool(parent_run_id)):
            yield TrackedRun(mlflow_client, run_id)
            status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as exc:  # an exception may say how its run ends (a pruned sweep trial: FINISHED early)
        status = getattr(exc, "run_status", "FAILED")
        raise
    finally:
        with contextlib.suppress(Exception):
            while mlflow.active_run() is not None:
                mlflow.end_run(status)
        try:
            mlflow_client.set_terminated(run_id, status)
        except UserError:  # the server stayed away: the next run in the experiment reaps this one
            if status == "FINISHED":
                raise


def scratch_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="workbench-")
