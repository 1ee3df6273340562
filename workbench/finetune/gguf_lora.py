"""LoRA adapters in llama.cpp's GGUF form: written from a PEFT state dict, checked against a base model.

A GGUF adapter is a small GGUF file of type `adapter` (`adapter.type = lora`, `adapter.lora.alpha`)
whose tensors are named after the base model's weights with `.lora_a` / `.lora_b` appended;
llama.cpp scales their product by alpha / rank, as PEFT does. Two details make it faithful:
llama.cpp's Llama weights store the rows of the query and key projections in an interleaved
rotary order (the converter that made the base GGUF permuted them, and transformers' GGUF
loader permuted them back), so the B matrices of q_proj and k_proj get the same permutation;
and the file records the digest of the base GGUF it was trained on (`workbench.base_sha256`),
so an adapter is never applied to another model.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from workbench.errors import UserError
from workbench.lm.gguf_header import read_header

BASE_KEY = "workbench.base_sha256"
# transformers' Llama module names -> llama.cpp's tensor names (per block)
MODULES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_NAME = re.compile(r"(?:base_model\.model\.)?model\.layers\.(\d+)\.(.+)\.lora_([AB])\.weight$")


def sha256_file(path: Path) -> str:
    """The file's sha256, read once per (path, size, mtime) in a process: a base model is hashed once."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    from workbench.export.bundle import sha256_file as uncached  # the project's one file hasher

    return uncached(Path(path))


def _permute_rows(rows, n_head: int):
    """llama.cpp's rotary row order for a q/k projection output of `n_head` heads."""
    shape = rows.shape
    return rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def write_adapter(path: Path, state: dict, *, alpha: float, n_head: int, n_head_kv: int, base_sha256: str,
                  architecture: str = "llama") -> Path:
    """Write PEFT LoRA weights (`state`: name -> torch tensor) as a GGUF adapter at `path`."""
    import gguf
    import numpy as np

    tensors: dict[str, dict[str, np.ndarray]] = {}
    for name, tensor in state.items():
        match = _NAME.search(name)
        if not match or match.group(2) not in MODULES:
            raise ValueError(f"cannot place LoRA weight {name!r} in a llama.cpp model (targets: {', '.join(MODULES)})")
        block, module, which = match.groups()
        base = f"blk.{block}.{MODULES[module]}.weight"
        array = tensor.detach().float().cpu().numpy()
        if which == "B" and module == "self_attn.q_proj":
            array = _permute_rows(array, n_head)
        elif which == "B" and module == "self_attn.k_proj":
            array = _permute_rows(array, n_head_kv)
        tensors.setdefault(base, {})["lora_a" if which == "A" else "lora_b"] = np.ascontiguousarray(array)
    incomplete = [name for name, pair in tensors.items() if len(pair) != 2]
    if incomplete or not tensors:
        raise ValueError(f"LoRA weights without their A/B partner: {incomplete[:3]}" if incomplete else "no LoRA weights")
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    writer.add_string(BASE_KEY, base_sha256)
    for base, pair in sorted(tensors.items()):
        writer.add_tensor(f"{base}.lora_a", pair["lora_a"])  # (rank, in): ggml ne = [in, rank]
        writer.add_tensor(f"{base}.lora_b", pair["lora_b"])  # (out, rank): ggml ne = [rank, out]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path


def base_architecture(path: Path) -> str:
    """`general.architecture` of a GGUF model file (read from its header, no weights loaded)."""
    try:
        return str(read_header(path, {"general.architecture"}).get("general.architecture", "unknown"))
    except (OSError, ValueError) as exc:  # not a GGUF file at all
        raise UserError(f"{path} is not a GGUF model transformers can read ({type(exc).__name__}: {exc})",
                        field="lm.model") from None


def block_count(path: Path) -> int | None:
    """How many transformer blocks a GGUF model has (`<architecture>.block_count`; None if unsaid)."""
    architecture = base_architecture(path)
    key = f"{architecture}.block_count"
    value = read_header(path, {key}).get(key)
    return int(value) if isinstance(value, int) else None


def adapter_base(path: Path) -> str | None:
    """The base model digest an adapter was trained on (None: not written by the workbench)."""
    try:
        header = read_header(path, {"general.type", BASE_KEY})
    except (OSError, ValueError) as exc:  # not a GGUF file at all
        raise UserError(f"{path} is not a GGUF LoRA adapter ({type(exc).__name__}: {exc})", field="lm.lora") from None
    if header.get("general.type") != "adapter":
        raise UserError(f"{path} is a GGUF file but not an adapter (general.type is not 'adapter')", field="lm.lora")
    base = header.get(BASE_KEY)
    return str(base) if base is not None else None


def check_adapter(path: Path, base: Path, *, source: str = "<spec>", expected_sha256: str | None = None) -> str:
    """Refuse an adapter that is missing, was changed since it was recorded (`expected_sha256`), or
    belongs to another base model; returns its sha256."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"LoRA adapter {path} does not exist", file=source, field="lm.lora")
    digest = sha256_file(path)
    if expected_sha256 and digest != expected_sha256:
        raise UserError(f"LoRA adapter {path} was changed: its sha256 is {digest[:12]}…, the program recorded "
                        f"{expected_sha256[:12]}…", file=source, field="lm.lora")
    trained_on, base_sha = adapter_base(path), sha256_file(base)
    if trained_on is not None and trained_on != base_sha:
        raise UserError(f"LoRA adapter {path.name} was trained on another base model (sha256 {trained_on[:12]}…), "
                        f"not {base.name} ({base_sha[:12]}…)", file=source, field="lm.lora")
    return digest


def run_adapter(client, run_id: str, recorded: str, folder: Path) -> str:
    """A run's logged LoRA adapter (artifact `lora/<name>`), downloaded into `folder`; the LM checks
    its sha256 against the spec's `lm.lora_sha256` when it loads it."""
    name = Path(recorded).name
    try:
        return client.download_artifacts(run_id, f"lora/{name}", str(folder))
    except Exception:  # noqa: BLE001  MLflow raises several kinds for a missing artifact
        raise UserError(f"run {run_id[:12]} used the LoRA adapter {name} but has no artifact lora/{name}",
                        field="RUN") from None
