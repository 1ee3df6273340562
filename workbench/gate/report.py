"""What the gate writes: JUnit XML (one test case per check, read by every CI system) and
a Markdown summary fit for a pull-request comment. Both are written to a temporary file
beside the target and renamed into place, so a reader never sees half a file."""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from workbench.comparison.report import changed_examples, prompt_diff
from workbench.errors import UserError
from workbench.gate.checks import FAILED, PASSED, SKIPPED, GateResult, median_seconds, tokens_per_example

SHOWN_CHANGES = 10
MARK = {PASSED: "✅ passed", FAILED: "❌ failed", SKIPPED: "➖ skipped"}


def check_writable(path: str | None, flag: str) -> None:
    """Before any work: the folder exists and can be written, and the path is not a folder."""
    if path is None:
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UserError(f"{path} is a folder; give a file path", field=flag)
    if not folder.is_dir():
        raise UserError(f"folder {folder} does not exist", field=flag)
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UserError(f"{path} cannot be written (permission denied)", field=flag)


def write_atomic(path: str, text: str) -> None:
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def junit_xml(result: GateResult | None, *, suite: str, seconds: float, error: str | None = None) -> str:
    """One <testcase> per check; a candidate run that could not finish is one <error> case."""
    root = ET.Element("testsuites", name="workbench gate")
    cases = []
    if result is not None:
        for check in result.checks:
            case = ET.Element("testcase", classname=f"workbench.gate.{suite}", name=check.name, time="0")
            if check.status == FAILED:
                ET.SubElement(case, "failure", message=check.message, type="regression").text = check.message
            elif check.status == SKIPPED:
                ET.SubElement(case, "skipped", message=check.message)
            else:
                ET.SubElement(case, "system-out").text = check.message
            cases.append(case)
    if error is not None:
        case = ET.Element("testcase", classname=f"workbench.gate.{suite}", name="run", time=f"{seconds:.3f}")
        ET.SubElement(case, "error", message=error, type="RunFailed").text = error
        cases.append(case)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    errors = sum(1 for c in cases if c.find("error") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    attrs = {"tests": str(len(cases)), "failures": str(failures), "errors": str(errors), "skipped": str(skipped),
             "time": f"{seconds:.3f}"}
    root.attrib.update(attrs)
    testsuite = ET.SubElement(root, "testsuite", name=f"gate {suite}", **attrs)
    if result is not None:
        props = ET.SubElement(testsuite, "properties")
        for key, value in (("baseline_run", result.baseline.run_id), ("candidate_run", result.candidate.run_id),
                           ("n", str(result.paired.n)), ("p_value", f"{result.paired.p_value:.6g}"),
                           ("difference", f"{result.paired.difference:.6f}")):
            ET.SubElement(props, "property", name=key, value=value)
    testsuite.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cell(value, limit: int = 60) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _num(value, fmt: str) -> str:
    return "–" if value is None or value != value else format(value, fmt)


def markdown(result: GateResult, *, baseline_ref: str) -> str:
    """The PR comment: verdict, scores with CIs, p-value, checks, worst changed examples, prompt diff."""
    b, c, p = result.baseline, result.candidate, result.paired
    verdict = "✅ not worse than the baseline" if result.passed else "❌ worse than the baseline"
    lines = [f"## workbench gate: {verdict}", "",
             f"Candidate **{_cell(c.label)}** vs baseline **{_cell(baseline_ref)}** (run `{b.run_id[:12]}`), "
             f"paired on the same {p.n} examples.", "",
             "| | score | 95% CI | failures | tokens / example | median s / example |", "|---|---|---|---|---|---|"]
    for name, run in (("baseline", b), ("candidate", c)):
        m = run.metrics
        failures = int((run.table["error_type"].fillna("") != "").sum()) if "error_type" in run.table else 0
        lines.append(f"| {name} | {_num(m.get('score'), '.4f')} | [{_num(m.get('score_ci_low'), '.4f')}, "
                     f"{_num(m.get('score_ci_high'), '.4f')}] | {failures} | {_num(tokens_per_example(run), '.1f')} | "
                     f"{_num(median_seconds(run), '.3f')} |")
    lines += ["", f"Difference (candidate − baseline): **{p.difference:+.4f}** [{p.ci[0]:+.4f}, {p.ci[1]:+.4f}], "
              f"{p.test} p = {p.p_value:.3g} (alpha {result.thresholds.alpha:g}); {p.better} examples better, "
              f"{p.worse} worse.", "", "| check | result | detail |", "|---|---|---|"]
    lines += [f"| {check.name} | {MARK[check.status]} | {_cell(check.message, 300)} |" for check in result.checks]
    changes = changed_examples(b, c)
    worse = changes[changes.change == "worse"].head(SHOWN_CHANGES)
    if len(worse):
        lines += ["", f"### Worst changed examples ({len(worse)} of {int((changes.change == 'worse').sum())} worse)",
                  "", "| id | input | gold | baseline | candidate |", "|---|---|---|---|---|"]
        lines += [f"| {_cell(i, 16)} | {_cell(r.input)} | {_cell(r.gold, 30)} | {_cell(r.predicted_a, 30)} | "
                  f"{_cell(r.predicted_b, 30)} |" for i, r in worse.iterrows()]
    diff = prompt_diff(b, c)
    lines += ["", "<details><summary>Prompt diff</summary>", "", "```diff", diff[:20000], "```", "", "</details>", ""]
    return "\n".join(lines)
