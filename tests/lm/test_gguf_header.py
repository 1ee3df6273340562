"""The direct GGUF header reader agrees with the `gguf` package, stops early, and refuses
files that are not GGUF or are cut short."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.lm.gguf_header import GGUFError, read_header


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    import gguf

    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(2048)
    writer.add_string("general.type", "adapter")
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(300)])
    writer.add_array("tokenizer.ggml.scores", [float(i) for i in range(300)])
    writer.add_bool("some.flag", True)
    writer.add_float32("some.scale", 0.5)
    writer.add_string("workbench.base_sha256", "ab" * 32)
    writer.add_tensor("w", np.ones((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_every_value_matches_the_gguf_package(written):
    header = read_header(written)
    assert header["general.architecture"] == "llama" and header["llama.context_length"] == 2048
    assert header["general.type"] == "adapter" and header["workbench.base_sha256"] == "ab" * 32
    assert header["tokenizer.ggml.tokens"][:2] == ["tok0", "tok1"] and len(header["tokenizer.ggml.tokens"]) == 300
    assert header["tokenizer.ggml.scores"][299] == 299.0 and header["some.flag"] is True
    assert header["some.scale"] == 0.5
    assert read_header(written, {"workbench.base_sha256", "some.flag"}) == {"workbench.base_sha256": "ab" * 32,
                                                                          "some.flag": True}


def test_the_shipped_model_is_read_only_as_far_as_the_asked_keys(tmp_path):
    from workbench.lm.models import resolve_model_path
    from workbench.lm.window import trained_context

    path = resolve_model_path("smollm2-135m-instruct")
    assert trained_context(path) == 8192
    prefix = tmp_path / "first-4KiB.gguf"  # the keys asked for lie before the tokenizer's arrays
    with open(path, "rb") as handle:
        prefix.write_bytes(handle.read(4096))
    assert read_header(prefix, {"general.architecture", "llama.context_length"}) == \
        {"general.architecture": "llama", "llama.context_length": 8192}
    with pytest.raises(GGUFError, match="truncated"):
        read_header(prefix)  # the whole header needs more than 4 KiB


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"GGML" + b[4:], "not a GGUF file"),
    (lambda b: b[:4] + (9).to_bytes(4, "little") + b[8:], "GGUF version 9"),
    (lambda b: b[:60], "truncated"),
])
def test_damaged_files_are_refused(written, tmp_path, damage, message):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(damage(written.read_bytes()))
    with pytest.raises(GGUFError, match=message):
        read_header(bad)
