"""Each compiled predictor's prompt as a version in MLflow's Prompt Registry.

The prompt `<spec>.<predictor>` gets a new version only when its template (instructions,
fields, fixed demos, and how demos are retrieved) differs from the latest version; either
way the version is linked to the run. `promote` moves the `champion` alias on the run's
prompt versions too (`set_alias`).
"""

from __future__ import annotations

import re

import dspy

from workbench.prompts import render_predictor

RUN_TAG = "workbench.run_id"
NAME_RULE = re.compile(r"[^A-Za-z0-9._-]+")


def prompt_name(spec_name: str, predictor: str) -> str:
    return NAME_RULE.sub("-", f"{spec_name}.{predictor}")[:250]


def template(name: str, predictor, program: dspy.Module) -> str:
    """The predictor's prompt with its input fields as {{variables}}."""
    from workbench.prompts import render_program

    lines = render_predictor(name, predictor, program)
    lines += ["### Call", "", *[f"{field}: {{{{{field}}}}}" for field in predictor.signature.input_fields], ""]
    extra = render_program(program).split("## Retrieved demos", 1)
    if len(extra) == 2:
        lines += ["## Retrieved demos" + extra[1]]
    return "\n".join(lines).replace("{{{{", "{{")


def register(client, spec_name: str, program: dspy.Module, run_id: str) -> dict[str, int]:
    """{prompt name: version} for the run's predictors, registering changed ones; links them to the run."""
    versions: dict[str, int] = {}
    for predictor_name, predictor in program.named_predictors():
        name = prompt_name(spec_name, predictor_name)
        text = template(predictor_name, predictor, program)
        latest = _latest(client, name)
        if latest is not None and latest.template == text:
            version = latest
        else:
            version = client.register_prompt(name, text, commit_message=f"compiled in run {run_id}",
                                             tags={RUN_TAG: run_id, "workbench.predictor": predictor_name})
        client.link_prompt_version_to_run(run_id, version)
        versions[name] = int(version.version)
    return versions


def _latest(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_prompt_versions(name, max_results=1000)
    except MlflowException:
        return None
    items = list(getattr(found, "prompt_versions", found) or [])
    return max(items, key=lambda v: int(v.version)) if items else None


def set_alias(client, versions: dict[str, int], alias: str) -> None:
    for name, version in versions.items():
        client.set_prompt_alias(name, alias, int(version))
