"""The base model to fine-tune as transformers reads it: (tokenizer, float32 model) from a GGUF file.

transformers reads a GGUF slowly: 19 s for the embedded 135M model on 2 cores, of which the
de-quantizing is 1.5 s (it parses the 49,152-token vocabulary twice and rebuilds a tensor-name
map for every tensor). So the first read is kept under `<models>/base-<GGUF's sha256[:16]>/`
(config, tokenizer, float32 safetensors; `<models>` is `$WORKBENCH_MODELS`, else `.cache/models`)
and later trainings load that copy in about a second. The folder is named by the GGUF's content,
written beside its final place and renamed into it, so a changed GGUF gets a new copy and a
half-written one is never read; a copy that cannot be written (a full disk) only costs the time.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from workbench.errors import UserError
from workbench.paths import fill_once, models_dir

log = logging.getLogger(__name__)

DONE = "source.json"  # written last: a folder without it is not a copy


def copy_dir(gguf_path: Path) -> Path:
    from workbench.finetune.gguf_lora import sha256_file

    return models_dir() / f"base-{sha256_file(gguf_path)[:16]}"


def load_base(gguf_path: Path):
    """(tokenizer, float32 model) from a GGUF file (or its saved copy), or a one-line refusal naming
    the file and its architecture."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the compile spinner shows progress; no second bar
    hf_logging.set_verbosity_error()
    gguf_path = Path(gguf_path)
    folder = copy_dir(gguf_path)
    if (folder / DONE).is_file():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
            model.config.use_cache = False
            return tokenizer, model
        except Exception as exc:  # noqa: BLE001 (any damage, e.g. a truncated safetensors: read the GGUF again)
            log.warning("the saved copy of %s in %s cannot be read (%s); reading the GGUF", gguf_path.name, folder,
                        str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__)
            shutil.rmtree(folder, ignore_errors=True)
    tokenizer, model = _read_gguf(gguf_path)
    _save(folder, gguf_path, tokenizer, model)
    model.config.use_cache = False
    return tokenizer, model


def _read_gguf(gguf_path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import modeling_gguf_pytorch_utils as gguf_loading

    gguf_loading.tqdm = lambda iterable, **_: iterable  # its de-quantizing bar ignores the verbosity setting
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"transformers cannot read {gguf_path.name} as a base model to fine-tune ({first}); "
                        "fine-tuning needs a GGUF of an architecture transformers' GGUF loader supports "
                        "(llama, mistral, qwen2, ...)", field="lm.model") from None
    if getattr(model.config, "model_type", "") not in ("llama", "mistral"):
        raise UserError(f"{gguf_path.name} is a {model.config.model_type!r} model; LoRA adapters can be written "
                        "for llama-architecture GGUF models only", field="lm.model")
    return tokenizer, model


def _save(folder: Path, gguf_path: Path, tokenizer, model) -> None:
    """Write the copy (beside `folder`, renamed in: `fill_once`); a failure only logs."""
    def fill(tmp: Path) -> None:
        from safetensors.torch import save_model

        tokenizer.save_pretrained(str(tmp))
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # read from a GGUF, but the weights are plain float32 now
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})  # tied weights once
        (tmp / DONE).write_text(json.dumps({"gguf": gguf_path.name, "sha256": folder.name[len("base-"):]}) + "\n")

    try:
        fill_once(folder, DONE, fill)
    except (OSError, ValueError, RuntimeError) as exc:
        log.info("no saved copy of %s (%s); the next training reads the GGUF again", gguf_path.name, exc)
