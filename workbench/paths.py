"""Where the project's folders are: datasets/, experiments/, mlruns/, .cache/ (and .cache/models/)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path


def project_root() -> Path:
    """The workbench checkout: $WORKBENCH_PROJECT, else the folder above this package
    when it holds datasets/ (an editable install), else the current directory."""
    env = os.environ.get("WORKBENCH_PROJECT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "datasets").is_dir():
        return here
    return Path.cwd()


def datasets_dir() -> Path:
    return project_root() / "datasets"


def cache_dir() -> Path:
    """LM response cache and built indexes; $WORKBENCH_CACHE overrides."""
    env = os.environ.get("WORKBENCH_CACHE")
    return Path(env).resolve() if env else project_root() / ".cache"


def models_dir() -> Path:
    """Models unpacked or converted once (the dense retriever's encoder, fine-tuning's base model):
    $WORKBENCH_MODELS, else `models/` in the cache folder. Their names carry their source's digest."""
    env = os.environ.get("WORKBENCH_MODELS")
    return Path(env).resolve() if env else cache_dir() / "models"


def fill_once(folder: Path, done: str, fill: Callable[[Path], None]) -> None:
    """Make `folder` unless it holds `done`: `fill` writes a sibling temporary folder that is then renamed
    into place, so no reader sees half of it and of two processes filling it at once one copy stays. A
    folder without `done` is not one of these and is replaced. The temporary folder never outlives the call."""
    if (folder / done).is_file():
        return
    tmp = folder.with_name(f"{folder.name}.tmp-{time.time_ns()}")
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
        if not (folder / done).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            try:
                tmp.rename(folder)
            except OSError:
                if not (folder / done).is_file():  # not another process's copy landing first
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
