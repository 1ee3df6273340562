"""Comparing finished runs: a leaderboard, paired tests for the pairs asked, the examples
that changed, and what changed in the prompts. The CLI and notebooks share this.

    comparison = workbench.compare(["routing"])  # tracking_uri: the default store
    comparison.leaderboard      # one row per run: score, 95% CI, n, cost
    comparison.pairs            # one row per pair: difference, its CI, test, p-value
    comparison.changes[(a, b)]  # the examples whose score changed between a and b
    comparison.prompt_diff[(a, b)]
"""

from __future__ import annotations

import difflib
import itertools
import json
from dataclasses import dataclass, field

import pandas as pd

from workbench.comparison.runs import RunData, load_runs
from workbench.comparison.stats import paired_test
from workbench.errors import UserError
from workbench.tracking import default_uri

COST_METRICS = ("lm_calls", "prompt_tokens", "completion_tokens", "seconds", "compile_seconds", "compile_lm_calls")


@dataclass
class Comparison:
    runs: list[RunData]
    leaderboard: pd.DataFrame
    pairs: pd.DataFrame
    changes: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    prompt_diff: dict[tuple[str, str], str] = field(default_factory=dict)
    # pairs made with different lock files or package versions (workbench.environment)
    environment: dict[tuple[str, str], str] = field(default_factory=dict)

    def run(self, run_id: str) -> RunData:
        return next(r for r in self.runs if r.run_id == run_id)


def leaderboard(runs: list[RunData]) -> pd.DataFrame:
    rows = []
    for r in runs:
        m = r.metrics
        rows.append({"run_id": r.run_id, "run": r.label, "program": r.tags.get("workbench.program", ""),
                     "optimizer": r.tags.get("workbench.optimizer", ""), "score": m.get("score", float("nan")),
                     "ci_low": m.get("score_ci_low", float("nan")), "ci_high": m.get("score_ci_high", float("nan")),
                     "dev_score": m.get("dev_score", float("nan")), "n": len(r.table), **{k: m.get(k, float("nan")) for k in COST_METRICS},
                     "seconds_per_example": m.get("seconds_per_example", float("nan"))})
    return pd.DataFrame(rows).sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def aligned_scores(a: RunData, b: RunData) -> tuple[pd.Series, pd.Series]:
    sa, sb = a.scores(), b.scores()
    only_a, only_b = set(sa.index) - set(sb.index), set(sb.index) - set(sa.index)
    if only_a or only_b or sa.index.has_duplicates:
        raise UserError(f"runs {a.label} and {b.label} were evaluated on different examples ({len(only_a)} only in "
                        f"the first, {len(only_b)} only in the second); pair runs of the same evaluation set",
                        field="runs")
    return sa, sb.reindex(sa.index)


def changed_examples(a: RunData, b: RunData) -> pd.DataFrame:
    """Examples whose score differs, worst regressions first."""
    ta, tb = a.table.set_index(a.table["id"].astype(str)), b.table.set_index(b.table["id"].astype(str))
    tb = tb.reindex(ta.index)
    text_column = next((c for c in ("text", "question") if c in ta), None)
    frame = pd.DataFrame({"input": ta[text_column] if text_column else "", "gold": ta.get("gold"),
                          "predicted_a": ta.get("predicted"), "predicted_b": tb.get("predicted"),
                          "score_a": ta["score"].astype(float), "score_b": tb["score"].astype(float)})
    frame = frame[frame.score_a != frame.score_b].copy()
    frame["change"] = (frame.score_b - frame.score_a).map(lambda d: "better" if d > 0 else "worse")
    return frame.sort_values(["change", "score_a"], ascending=[False, False])


def prompt_text(state: dict) -> list[str]:
    """A run's compiled prompts as lines: each predictor's instructions and demos, the demo pool."""
    lines = []
    for name, part in sorted(state.items()):
        if not isinstance(part, dict):
            continue
        signature = part.get("signature")
        if isinstance(signature, dict):
            lines.append(f"[{name}] instructions: {signature.get('instructions', '')}")
            for i, demo in enumerate(part.get("demos") or [], 1):
                shown = {k: v for k, v in demo.items() if k != "augmented"} if isinstance(demo, dict) else demo
                lines.append(f"[{name}] demo {i}: {json.dumps(shown, ensure_ascii=False, default=str)[:300]}")
        elif "examples" in part and "k" in part:
            lines.append(f"[{name}] retrieves {part['k']} demos per query from {len(part['examples'])} examples"
                         + (" (balanced per label)" if part.get("balanced") else ""))
    return lines


def prompt_versions(tags: dict[str, str]) -> dict[str, str]:
    """{prompt name: version} of a run's MLflow Prompt Registry versions (its tag `workbench.prompts`)."""
    pairs = [item.rsplit("/", 1) for item in tags.get("workbench.prompts", "").split(",") if "/" in item]
    return {name: version for name, version in pairs}


def version_links(a: RunData, b: RunData) -> list[str]:
    """One line per prompt of either run: its registry versions in a and b (prompts:/NAME/VERSION)."""
    va, vb = prompt_versions(a.tags), prompt_versions(b.tags)
    lines = []
    for name in sorted(set(va) | set(vb)):
        left = f"prompts:/{name}/{va[name]}" if name in va else "(none)"
        right = f"prompts:/{name}/{vb[name]}" if name in vb else "(none)"
        same = " (same version)" if name in va and name in vb and va[name] == vb[name] else ""
        lines.append(f"# prompt {name}: {left} -> {right}{same}")
    return lines


def prompt_diff(a: RunData, b: RunData) -> str:
    """The unified diff of the two runs' prompts, headed by their Prompt Registry versions."""
    diff = list(difflib.unified_diff(prompt_text(a.state), prompt_text(b.state), fromfile=a.label, tofile=b.label,
                                     lineterm="", n=1))
    return "\n".join([*version_links(a, b), *(diff or ["(the prompts are identical)"])])


def compare(refs: list[str], *, tracking_uri: str | None = None, all_pairs: bool = False,
            seed: int = 0) -> Comparison:
    """Compare runs (ids or experiment names). Pairs: each run against the first one given
    (the baseline), or every pair with `all_pairs`."""
    tracking_uri = tracking_uri or default_uri()  # flag > environment > default
    runs = load_runs(refs, tracking_uri)
    board = leaderboard(runs)
    pairs = list(itertools.combinations(runs, 2)) if all_pairs else [(runs[0], other) for other in runs[1:]]
    from workbench.environment import difference

    rows, changes, diffs, environment = [], {}, {}, {}
    for a, b in pairs:
        sa, sb = aligned_scores(a, b)
        result = paired_test(sa.to_numpy(), sb.to_numpy(), seed=seed)
        rows.append({"a": a.label, "b": b.label, "score_a": result.mean_a, "score_b": result.mean_b,
                     "difference": result.difference, "ci_low": result.ci[0], "ci_high": result.ci[1],
                     "test": result.test, "p_value": result.p_value, "better": result.better, "worse": result.worse,
                     "n": result.n, "significant": result.significant})
        changes[(a.run_id, b.run_id)] = changed_examples(a, b)
        diffs[(a.run_id, b.run_id)] = prompt_diff(a, b)
        if line := difference(a.tags, b.tags):
            environment[(a.run_id, b.run_id)] = line
    return Comparison(runs, board, pd.DataFrame(rows), changes, diffs, environment)
