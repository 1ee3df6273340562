"""A spec's data, loaded and checked before any LM library is imported.

`load_data(spec)` calls the registered loader with `dataset.params`, samples the splits the
spec asks for and runs the data checks, so a missing column, an empty split or a split
asked for beyond its size is one line and exit 2 before DSPy, MLflow or llama.cpp load.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from workbench import registry
from workbench.data import TaskData, sample
from workbench.data.checks import DataChecks, check as check_data
from workbench.errors import UserError


@dataclass
class LoadedData:
    data: TaskData
    checks: DataChecks


def load_dataset(loader, params: dict, source: str) -> TaskData:
    """Call a dataset loader with the spec's params; bad params name the spec and field."""
    accepted = inspect.signature(loader).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())  # checked by the loader's check_params
    for key in params:
        if key not in accepted and not takes_any:
            raise UserError(f"unknown parameter {key!r} (known: {', '.join(accepted) or 'none'})", file=source,
                            field=f"dataset.params.{key}")
    try:
        return loader(**params)
    except UserError as exc:
        if exc.file is None:
            exc.file = source
        raise


def load_whole(spec) -> TaskData:
    """What the spec's registered loader returns for `dataset.params`, before any fold or sampling."""
    loader = registry.datasets.get(spec.dataset.name, file=spec.source, field="dataset.name")
    return load_dataset(loader, spec.dataset.params, spec.source)


def load_data(spec, whole: TaskData | None = None) -> LoadedData:
    """`whole`: `load_whole(spec)`, if already loaded (the folds of one spec share it)."""
    d = spec.dataset
    data = whole if whole is not None else load_whole(spec)
    if d.fold is not None:  # cross-fitting: before sampling, so `dataset.test` samples the fold's own part
        from workbench.data.folds import cross_fit

        if spec.eval.split != "test":
            raise UserError(f"cross-fitting parts the test split, but eval.split is {spec.eval.split!r}",
                            file=spec.source, field="dataset.fold")
        data = cross_fit(data, d.fold, seed=d.seed, source=spec.source)
    data = sample(data, train=d.train, dev=d.dev, test=d.test, seed=d.seed, source=spec.source)
    return LoadedData(data, check_data(data, spec.eval.split))
