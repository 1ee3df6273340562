"""Optuna studies on RDB storage (SQLite on one machine, PostgreSQL across machines).

The study itself carries what every worker needs, as user attributes: the spec (JSON), the
search-space digest, the budgets, the deadline and the MLflow parent run id. A worker that
joins by `--study NAME --storage URL` needs nothing else. Trials of a worker that died
(kill -9, power cut) stop sending heartbeats; the next worker to ask for a trial marks them
FAIL and re-queues their parameters once (Optuna's RetryHeartbeatStaleTrialCallback).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from workbench.errors import UserError
from workbench.search import SearchSpec
from workbench.sweep.storage_url import CONNECT_TIMEOUT_S, check_scheme, hide_password

HEARTBEAT_S = int(os.environ.get("WORKBENCH_SWEEP_HEARTBEAT_S", "10"))
GRACE_S = int(os.environ.get("WORKBENCH_SWEEP_GRACE_S", "30"))

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def is_surplus(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial started beyond the study's count and ended at once (trial.Surplus): it never ran."""
    return bool(trial.user_attrs.get("surplus"))


def open_storage(url: str, *, stale_trial_callback=None) -> RDBStorage:
    """An RDB storage, or one UserError line (field --storage) within ~5 s if it does not answer."""
    check_scheme(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        engine_kwargs["pool_pre_ping"] = True
    logging.getLogger("sqlalchemy").setLevel(logging.ERROR)
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                          grace_period=GRACE_S, heartbeat_stale_trial_callback=stale_trial_callback)
    except Exception as exc:  # noqa: BLE001  sqlalchemy/psycopg2 raise many kinds; all mean "cannot use it"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot open {hide_password(url)}: {first[:200]}", field="--storage") from None


def retry_callback(on_failed=None):
    """Re-queue a dead worker's trial once, after telling `on_failed(study, trial)` (MLflow cleanup)."""
    retry = RetryHeartbeatStaleTrialCallback(max_retry=1)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_failed is not None:
            on_failed(study, trial)
        retry(study, trial)

    return callback


def sampler_for(search: SearchSpec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """Seeded per worker: workers with one seed would propose the very same trials."""
    seed = search.seed + 1000 * worker
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)


def pruner_for(search: SearchSpec) -> optuna.pruners.BasePruner:
    if search.pruner == "none" or len(search.objectives) > 1:  # Optuna prunes single-objective studies only
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def create_or_resume(storage: RDBStorage, name: str, search: SearchSpec, *, attrs: dict[str, Any],
                     resume: bool) -> tuple[optuna.Study, bool]:
    """Create the study, or load it if it exists with the same search space (another space:
    refused unless `resume`). Returns (study, existed)."""
    directions = [o.direction for o in search.objectives]
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name in existing:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler_for(search),
                                  pruner=pruner_for(search))
        digest = study.user_attrs.get("space_digest")
        if digest != search.digest() and not resume:
            raise UserError(f"study {name!r} exists with a different search space; pass --resume to continue it "
                            "with this spec, or choose another --study", field="--study")
        if [d.name.lower() for d in study.directions] != directions:
            raise UserError(f"study {name!r} has directions {[d.name.lower() for d in study.directions]}, "
                            f"the spec asks for {directions}", field="--study")
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return study, True
    study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                sampler=sampler_for(search), pruner=pruner_for(search))
    for key, value in {**attrs, "space_digest": search.digest()}.items():
        study.set_user_attr(key, value)
    return study, False


def load_existing(storage: RDBStorage, name: str, worker: int = 0) -> optuna.Study:
    """A study a worker joins: it must exist (the driver creates it)."""
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name not in names:
        known = ", ".join(names[:10]) or "none"
        raise UserError(f"no study named {name!r} in this storage (studies: {known}); start it with "
                        "`workbench sweep SPEC --study NAME --storage URL`", field="--study")
    attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    search = SearchSpec.model_validate(attrs["search"])
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler_for(search, worker),
                             pruner=pruner_for(search))
