"""Call an exported plain prompt on any OpenAI-compatible endpoint, without DSPy.

Written by `workbench export RUN --format prompt` next to `prompt.json` (the chat template,
its demos or demo pool, and the reply's JSON schema). It needs httpx, plus numpy and
scikit-learn when the prompt picks its demos or candidate labels per query.

    python client.py --base-url http://127.0.0.1:8080/v1 --model my-model "where is my card?"
    python client.py --base-url ... --model ... --jsonl items.jsonl   # one JSON object per line in, per line out

    from client import PlainPrompt
    prompt = PlainPrompt("prompt.json")
    prompt.call({"text": "where is my card?"}, base_url=..., model=...)  # -> {"label": ...}

`prompt.json` is the contract: `render(inputs)` rebuilds the exact messages and schema the
workbench sent for the run (export checked that on every evaluation item), and `call`
validates the reply against the schema before returning it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx


class ReplyError(ValueError):
    """The endpoint answered, but not with a JSON object that fits the schema."""


class PlainPrompt:
    def __init__(self, path: str | Path = Path(__file__).with_name("prompt.json")):
        self.doc = json.loads(Path(path).read_text(encoding="utf-8"))
        self.steps = self.doc["steps"]
        pool = self.steps.get("pool") or {}
        self.pool = pool.get("examples", [])
        self._index = self._ranker = None
        if self.pool and (pool.get("k") or self.steps.get("candidates")):
            self._fit()

    # -- query-time steps: TF-IDF nearest neighbours and a TF-IDF logistic-regression ranker --
    def _fit(self) -> None:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        pool = self.steps["pool"]
        texts = [str(e[pool["input_field"]]) for e in self.pool]
        labels = [e[pool["label_field"]] for e in self.pool]
        settings = dict(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)
        self._np = np
        self._labels = np.asarray(labels, dtype=object)
        if pool.get("k"):
            self._vectorizer = TfidfVectorizer(**settings)
            self._matrix = self._vectorizer.fit_transform(texts)
        if self.steps.get("candidates"):
            self._rank_vectorizer = TfidfVectorizer(**settings)
            features = self._rank_vectorizer.fit_transform(texts)
            self._ranker = LogisticRegression(C=pool.get("ranker_C", 10.0), max_iter=2000).fit(features, labels)

    def allowed_labels(self, text: str) -> list[str]:
        return self._listed(self._scored(text))

    def _scored(self, text: str) -> list[tuple[str, float]]:
        """The ranker's top n labels with their probabilities, best first ([] when nothing narrows)."""
        n = self.steps.get("candidates") or 0
        if not (n and self._ranker is not None):
            return []
        probs = self._ranker.predict_proba(self._rank_vectorizer.transform([text]))[0]
        classes = [str(c) for c in self._ranker.classes_]
        return [(classes[i], float(probs[i])) for i in self._np.argsort(-probs, kind="stable")[:n]]

    def _listed(self, scored: list[tuple[str, float]]) -> list[str]:
        """The candidates as the prompt lists them: by score, or in the label set's order."""
        top = [label for label, _ in scored]
        if not top:
            return list(self.steps["labels"])
        if self.steps.get("candidate_order") == "label":
            position = {label: i for i, label in enumerate(self.steps["labels"])}
            top.sort(key=lambda label: position.get(label, len(position)))
        return top

    def _nearest(self, text: str, k: int, mask=None) -> list[int]:
        np = self._np
        sims = (self._vectorizer.transform([text]) @ self._matrix.T).toarray()[0]
        if mask is not None:
            sims = np.where(mask, sims, -np.inf)
        k = min(k, int(np.isfinite(sims).sum()))
        if not k:
            return []
        top = np.argpartition(-sims, k - 1)[:k]
        return [int(i) for i in top[np.lexsort((top, -sims[top]))]]

    def demos(self, text: str, narrowed: list[str] | None) -> list[dict[str, Any]]:
        pool = self.steps.get("pool") or {}
        k = pool.get("k") or 0
        if not (k and self.pool):
            return list(self.steps.get("fixed_demos") or [])
        np = self._np
        if not (pool.get("balanced") and narrowed):
            mask = np.isin(self._labels, narrowed) if narrowed is not None else None
            return [self.pool[i] for i in reversed(self._nearest(text, k, mask))]
        per_label = -(-k // len(narrowed))
        picked = [i for label in narrowed for i in self._nearest(text, per_label, self._labels == label)]
        sims = (self._vectorizer.transform([text]) @ self._matrix.T).toarray()[0]
        picked.sort(key=lambda i: (sims[i], -i))
        return [self.pool[i] for i in picked]

    # -- the prompt ----------------------------------------------------------------------
    def render(self, inputs: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The chat messages and the reply's JSON schema for these inputs."""
        template, steps = self.doc["template"], self.steps
        given = [name for name in template["inputs"] if name != "ranker_guess"]  # the guess is computed here
        missing = [name for name in given if not isinstance(inputs.get(name), str)]
        if missing:
            raise ValueError(f"inputs need the text field(s) {missing}")
        text = inputs[template["inputs"][0]]
        scored = self._scored(text)
        if steps.get("ranker_hint"):  # the ranker's best label and its probability, as the program shows it
            sure = scored and scored[0][1] >= float(steps.get("hint_from") or 0.0)
            inputs = {**inputs, "ranker_guess": f"{scored[0][0]} ({scored[0][1]:.2f})" if sure else "none"}
        allowed = self._listed(scored)
        narrowed = allowed if len(allowed) != len(steps["labels"]) else None
        output, limit = template["output"], template["inline_choices_limit"]
        system = template["system"]
        if len(allowed) > limit:
            system += "\n" + template["system_choices"].format(choices=", ".join(allowed))
        messages = [{"role": "system", "content": system}]
        for demo in self.demos(text, narrowed):
            messages.append({"role": "user", "content": self._inputs_text(demo)})
            messages.append({"role": "assistant", "content": json.dumps({output: demo.get(output)}, ensure_ascii=False)})
        user = self._inputs_text(inputs)
        if len(allowed) <= limit:
            user += "\n" + template["user_choices"].format(choices=", ".join(allowed))
        messages.append({"role": "user", "content": user})
        schema = json.loads(json.dumps(self.doc["response_schema"]))
        schema["properties"][output]["enum"] = allowed
        return messages, schema

    def _inputs_text(self, values: dict[str, Any]) -> str:
        return "\n".join(f"{name}: {values[name]}" for name in self.doc["template"]["inputs"] if name in values)

    def body(self, inputs: dict[str, Any], model: str, response_format: str | None = None,
             extra_body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The chat-completions request for these inputs."""
        return self._body(*self.render(inputs), model, response_format, extra_body)

    def _body(self, messages: list[dict[str, str]], schema: dict[str, Any], model: str,
              response_format: str | None, extra_body: dict[str, Any] | None) -> dict[str, Any]:
        body = {"model": model, "messages": messages, **self.doc["sampling"], **(extra_body or {})}
        kind = response_format or self.doc["response_format"]
        if kind == "openai_json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema,
                                                                                "strict": True}}
        elif kind == "json_object_schema":
            body["response_format"] = {"type": "json_object", "schema": schema}
        elif kind == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def validate(self, content: str, schema: dict[str, Any]) -> dict[str, Any]:
        start, end = content.find("{"), content.rfind("}")
        try:
            reply = json.loads(content[start:end + 1]) if start >= 0 else None
        except json.JSONDecodeError:
            reply = None
        if not isinstance(reply, dict):
            raise ReplyError(f"the reply is not a JSON object: {content[:200]!r}")
        for name in schema.get("required", []):
            if name not in reply:
                raise ReplyError(f"the reply has no {name!r}: {content[:200]!r}")
            allowed = schema["properties"][name].get("enum")
            if allowed is not None and reply[name] not in allowed:
                raise ReplyError(f"{name} {reply[name]!r} is not one of the allowed values {allowed}")
        return {name: reply[name] for name in schema["properties"] if name in reply}

    def call(self, inputs: dict[str, Any], *, base_url: str, model: str, api_key: str | None = None,
             response_format: str | None = None, extra_body: dict[str, Any] | None = None,
             client: httpx.Client | None = None, timeout: float = 120.0) -> dict[str, Any]:
        messages, schema = self.render(inputs)  # once: the demo and candidate steps are the client's own cost
        body = self._body(messages, schema, model, response_format, extra_body)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        own = client is None
        client = client or httpx.Client(timeout=timeout)
        try:
            reply = client.post(base_url.rstrip("/") + "/chat/completions", json=body, headers=headers)
        finally:
            if own:
                client.close()
        reply.raise_for_status()
        content = reply.json()["choices"][0]["message"].get("content") or ""
        return self.validate(content, schema)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", help="the input (the prompt's first input field)")
    parser.add_argument("--jsonl", help="a file of JSON objects (one per line) to answer")
    parser.add_argument("--base-url", required=True, help="the endpoint's OpenAI-compatible base URL (…/v1)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key-env", help="name of the environment variable holding the API key")
    parser.add_argument("--response-format", choices=["openai_json_schema", "json_object_schema", "json_object", "none"])
    parser.add_argument("--extra-body", type=json.loads, default=None, help="JSON merged into each request body")
    parser.add_argument("--prompt", default=str(Path(__file__).with_name("prompt.json")))
    args = parser.parse_args(argv)
    prompt = PlainPrompt(args.prompt)
    field = prompt.doc["template"]["inputs"][0]
    items = [json.loads(line) for line in open(args.jsonl, encoding="utf-8") if line.strip()] if args.jsonl \
        else [{field: args.text}] if args.text else parser.error("give a text or --jsonl")
    api_key = os.environ.get(args.api_key_env, "") if args.api_key_env else None
    with httpx.Client(timeout=120.0) as client:
        for item in items:
            out = prompt.call(item, base_url=args.base_url, model=args.model, api_key=api_key, client=client,
                              response_format=args.response_format, extra_body=args.extra_body)
            print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
