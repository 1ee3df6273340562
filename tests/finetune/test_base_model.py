"""The saved float32 copy of the base model (workbench/finetune/base_model.py), on a tiny random
Llama with the embedded model's tokenizer: written whole or not at all, read back identically,
and a damaged copy is dropped and the GGUF read again. (The slow tier trains the real model
from the GGUF and from its copy to the same adapter bit for bit.)"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.finetune.test_training import tiny_model  # noqa: E402
from tests.finetune.test_training import tokenizer  # noqa: E402,F401 (module fixture)


@pytest.fixture
def copy_in(tmp_path, monkeypatch, tokenizer):  # noqa: F811
    """load_base with its copy folder under tmp_path and a GGUF read that returns the tiny model
    (counting the reads)."""
    from workbench.finetune import base_model

    folder = tmp_path / "models" / "base-0123456789abcdef"
    reads: list[int] = []

    def read(_path):
        reads.append(1)
        return tokenizer, tiny_model(tokenizer)

    monkeypatch.setattr(base_model, "copy_dir", lambda _path: folder)
    monkeypatch.setattr(base_model, "_read_gguf", read)
    return base_model, folder, reads


def test_the_first_load_saves_a_copy_the_second_reads_the_same_model_from(copy_in, tokenizer):  # noqa: F811
    base_model, folder, reads = copy_in
    _, first = base_model.load_base(Path("smollm2.gguf"))
    assert (folder / base_model.DONE).is_file() and not list(folder.parent.glob("*.tmp-*"))
    again_tokenizer, second = base_model.load_base(Path("smollm2.gguf"))
    assert len(reads) == 1 and second.config.use_cache is False
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert again_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == \
        tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def test_a_copy_that_cannot_be_written_leaves_nothing_and_costs_only_time(copy_in, tmp_path):
    base_model, folder, reads = copy_in
    (tmp_path / "models").write_text("a file where the folder should be")
    _, model = base_model.load_base(Path("smollm2.gguf"))
    assert model is not None and (tmp_path / "models").is_file()
    base_model.load_base(Path("smollm2.gguf"))
    assert len(reads) == 2 and not list(tmp_path.glob("models*.tmp-*"))


def test_a_damaged_copy_is_dropped_and_the_gguf_read_again(copy_in, caplog):
    base_model, folder, reads = copy_in
    base_model.load_base(Path("smollm2.gguf"))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="workbench.finetune.base_model"):
        _, model = base_model.load_base(Path("smollm2.gguf"))
    assert len(reads) == 2 and "cannot be read" in caplog.text and "smollm2.gguf" in caplog.text
    assert (folder / base_model.DONE).is_file() and weights.stat().st_size > 1000  # saved afresh
    assert model.config.use_cache is False
