"""Vendored datasets load as Hugging Face splits with the documented sizes and labels."""

from __future__ import annotations

import subprocess
import sys

import datasets as hf
import pytest

from tests.conftest import ROOT
from workbench.data import sample
from workbench.errors import UserError
from workbench.registry import datasets


def test_datasets_folder_never_shadows_huggingface():
    assert not (ROOT / "datasets" / "__init__.py").exists()
    out = subprocess.run([sys.executable, "-c", "import datasets; print(datasets.Dataset.__module__)"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.stdout.strip().startswith("datasets.arrow_dataset"), out.stderr
    for folder in (ROOT / "datasets").iterdir():
        assert (folder / "LICENSE").is_file() and (folder / "CARD.md").is_file(), folder


@pytest.mark.parametrize("name,n_labels,sizes", [
    ("clinc150_domains", 10, (15000, 3000, 4500)),
    ("clinc150_intents", 150, (15000, 3000, 4500)),
    ("banking77", 77, (9000, 1003, 3080)),
])
def test_views(name, n_labels, sizes):
    data = datasets.get(name)()
    assert isinstance(data.splits["train"], hf.Dataset)
    assert tuple(len(data.splits[s]) for s in ("train", "validation", "test")) == sizes
    assert len(data.labels) == n_labels
    assert set(data.splits["test"]["label"]) <= set(data.labels)
    ids = [set(data.splits[s]["id"]) for s in ("train", "validation", "test")]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    assert len(data.fingerprint) == 16 and data.fingerprint == datasets.get(name)().fingerprint


def test_banking77_validation_is_held_out_of_train():
    data = datasets.get("banking77")()
    train, val = set(data.splits["train"]["text"]), set(data.splits["validation"]["text"])
    assert len(val - train) > 0.95 * len(val)  # a few duplicated texts exist in the release


def test_sampling_is_seeded_and_checked():
    data = datasets.get("clinc150_domains")()
    a = sample(data, train=100, dev=10, test=20, seed=3)
    b = sample(data, train=100, dev=10, test=20, seed=3)
    c = sample(data, train=100, dev=10, test=20, seed=4)
    assert a.splits["test"]["id"] == b.splits["test"]["id"] != c.splits["test"]["id"]
    examples = a.examples("test")
    assert len(examples) == 20 and set(examples[0].inputs().keys()) == {"text"}
    with pytest.raises(UserError, match="has 3000"):
        sample(data, train=None, dev=5000, test=None, seed=0)
