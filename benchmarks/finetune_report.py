"""The finetune benchmark's table (`benchmarks/finetune.py` measures the rows): one line per row with
its goal, paired tests against the rows it names and against its own ranker, and k-fold rows pooled."""

from __future__ import annotations


def narrowing(table) -> dict:
    """For a router that narrowed the labels: is the LM deciding, or copying the ranker? The ranker
    alone (its first label, no LM) scored on the same items, how often the LM took that first label,
    and how often the gold label was among the candidates at all (the ceiling)."""
    if "candidates" not in table.columns:
        return {}
    candidates = [list(c) if c is not None else [] for c in table["candidates"]]
    if not any(candidates):
        return {}
    first = [c[0] if c else None for c in candidates]
    n = len(first)
    return {"ranker_scores": [float(f is not None and f == g) for f, g in zip(first, table["gold"])],
            "first_pick_share": sum(f is not None and f == p for f, p in zip(first, table["predicted"])) / n,
            "gold_in_candidates": sum(g in c for g, c in zip(table["gold"], candidates)) / n}


def cross_fitted(parts: list[dict | None]) -> dict | None:
    """One row from the rows of k folds (disjoint test items, one adapter each): the items' scores pooled,
    CI and paired test on all of them; training minutes, steps and pairs summed over the k adapters."""
    if any(p is None or "baseline_scores" not in p for p in parts):
        return None
    from workbench.comparison.stats import paired_test
    from workbench.stats import bootstrap_ci

    def pooled(field):
        return [x for p in parts for x in p[field]]

    mine, theirs = pooled("scores"), pooled("baseline_scores")
    test, n = paired_test(theirs, mine), len(mine)
    total = {f: sum(p[f] or 0 for p in parts) for f in ("train_minutes", "train_steps", "train_pairs",
                                                          "train_planned_steps", "train_skipped")}
    speeds = [p["speed"] for p in parts if p.get("speed")]
    return {**total, "n": n, "score": sum(mine) / n, "ci": list(bootstrap_ci(mine)), "ids": pooled("ids"),
            "scores": mine, "baseline": parts[0]["baseline"], "logreg": sum(theirs) / n,
            "paired_vs_logreg": [test.difference, *test.ci, test.p_value],
            "eval_seconds_per_item": sum(p["eval_seconds_per_item"] * p["n"] for p in parts) / n,
            "run_id": "+".join(p["run_id"][:8] for p in parts), "commit": parts[-1]["commit"],
            "speed": [sum(s[0] for s in speeds) / len(speeds), sum(s[1] for s in speeds) / len(speeds)]
            if speeds else None, "speed_n": sum(p.get("speed_n", 0) for p in parts if p.get("speed"))}


def _training(row: dict) -> str:
    """Minutes, and where recorded the steps done of those planned, the pairs trained on (a
    `max_minutes` budget makes the steps depend on the CPU) and the sampled examples that made no pair."""
    text = f"{row['train_minutes']:.1f}"
    if row.get("train_steps") is not None:
        planned = f"/{row['train_planned_steps']:.0f}" if row.get("train_planned_steps") else ""
        skipped = f", {row['train_skipped']:.0f} without" if row.get("train_skipped") else ""
        text += f" ({row['train_steps']:.0f}{planned} steps, {row['train_pairs']:.0f} pairs{skipped})"
    if row.get("cpu"):  # recorded since 2026-12-07 (earlier rows: several 2-core machines, see the footnote)
        text += f" on {row['cpu']}"
    return text


def _paired_with(row: dict, other: dict | None) -> str:
    """The row against another row on the items both scored (per-item scores are kept since 2026-12-04)."""
    if other is None or "scores" not in row or "scores" not in other:
        return "not measured" if other is None else "no per-item scores kept"
    from benchmarks.optimizers import paired

    text = paired(row, other)
    if text in ("", "n/a"):
        return text
    theirs = dict(zip(other["ids"], other["scores"]))  # the items paired() tested, to count who alone was right
    common = [(s, theirs[i]) for i, s in zip(row["ids"], row["scores"]) if i in theirs]
    better, worse = sum(m > t for m, t in common), sum(m < t for m, t in common)
    return f"{text} (n={len(common)}: only this row right on {better}, only the other on {worse})"


def report(rows: dict) -> str:
    from benchmarks.finetune import CROSS_FITTED, OPTIMIZER_ROWS, ROWS
    from benchmarks.results import table

    lines, pairs = [], []
    for key, _, _, title, goal, baseline, alone in ROWS:
        row = rows.get(key)
        if row is None and key in CROSS_FITTED:
            row = cross_fitted([rows.get(part) for part in CROSS_FITTED[key]])
        if row is None:
            lines.append([title, "not measured", baseline, "", "", "", "", f"≥ {goal}" if goal else "–"])
            continue
        d, lo, hi, p = row["paired_vs_logreg"]
        ratio = row["speed"][0] / row["speed"][1] if row.get("speed") else None
        runs = "+".join(run[:8] for run in row["run_id"].split("+"))  # a cross-fitted row names each fold's run
        lines.append([f"{title} ({runs}, {row['commit']})", f"{row['score']:.3f} [{row['ci'][0]:.3f}, "
                      f"{row['ci'][1]:.3f}] n={row['n']}", f"{row.get('baseline', 'tfidf_logreg')} {row['logreg']:.3f}",
                      f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] p={p:.3g}", _training(row),
                      f"{row['eval_seconds_per_item']:.3f}{'†' if row.get('shared_cpu') else ''}",
                      f"{row['speed'][0]:.3f} / {row['speed'][1]:.3f} = {ratio:.2f} (n={row['speed_n']})"
                      if ratio else "", f"≥ {goal}: {'met' if row['score'] >= goal else 'missed'}" if goal else "–"])
        pairs += [[title, other, _paired_with(row, rows.get(other))] for other in alone]
        if "ranker_scores" in row:
            ranker = {"ids": row["ids"], "scores": row["ranker_scores"]}
            pairs.append([title, f"the ranker's first label, no LM ({sum(ranker['scores']) / row['n']:.3f}); the LM "
                          f"took it on {row['first_pick_share']:.1%}, gold among the candidates on "
                          f"{row['gold_in_candidates']:.1%}", _paired_with(row, ranker)])
        for other, what in OPTIMIZER_ROWS.get(key, []):
            from benchmarks.optimizers import load_rows

            against = load_rows().get(other)
            pairs.append([title, f"{what} ({other} of the optimizers table)", _paired_with(row, against)])
    combos = ("\n\nAgainst the program without the adapter, a narrowed router against its ranker alone, and "
              "combinations against each part alone "
              "(difference, 95% bootstrap CI, McNemar p, on the items both scored):\n\n"
              + table(["row", "against", "difference"], pairs)) if pairs else ""
    return ("## Finetune: the embedded LM fine-tuned on the program's own prompts (LoRA, CPU)\n\n"
            + table(["task (run, commit)", "accuracy [95% CI]", "classical baseline, same items",
                     "LM − baseline, paired", "train min (steps, pairs, examples without a pair)", "s/query (eval)",
                     "s/query base / adapter = ratio", "goal"], lines)
            + combos
            + "\n\nTraining parameters are the spec's (`experiments/routing_clinc150_finetune.yaml`: a seeded "
              "sample of training messages (now all 15,000, the clock deciding how many are seen; rows that name "
              "no count: 3,200), LoRA r=16 on every linear layer, batch 8, lr 0.002, at most 30 minutes; since "
              "f117741 the rate decays to zero by the end of the 30 minutes when they end the training first, "
              "before that it followed the planned steps; since 0ba111e the clock drives the decay only when the "
              "pace after the warm-up says the plan will not fit; BFCL: "
              "`benchmarks/finetune.py` BFCL_FT on the 80 training items of the view, BFCL `multiple` questions: gold "
              "pairs are the first accepted call, kept only where word overlap picks the right function, which "
              "dropped 14). A cross-fitted row pools the test items of its k fold rows (each scored by the adapter "
              "trained without them): accuracy, CI and paired tests over all of them; training minutes, steps and "
              "pairs summed over the k adapters. "
              "The ratio is base seconds over adapter seconds per query on the same prompts (≥ 0.9 means the "
              "adapter costs at most about a tenth more); both are plain chat completions without the label "
              "grammar, so a base model that writes a longer answer before stopping is slower for that reason "
              "too: the ratio is per query, not per token. † Other work shared the CPU during that row's evaluation: "
              "its accuracy stands, its seconds per query do not compare. Since 2026-12-07 a row names the CPU it "
              "trained on and the precision `precision: auto` took there (a time budget's steps depend on both); "
              "earlier rows ran on several 2-core machines (an Intel Xeon with AMX, AMD EPYCs with and without "
              "bfloat16 products), named in the README where known. Rows not measured yet are listed with "
              "their goal.\n")
