"""Where the project's folders are: datasets/, experiments/, mlruns/, .cache/ (and .cache/models/)."""

from __future__ import annotations

import os
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
