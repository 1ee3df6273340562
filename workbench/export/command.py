"""The `export`, `promote` and `serve` subcommands over workbench.export and workbench.serve."""

from __future__ import annotations

import argparse

from workbench.console import Reporter
from workbench.tracking import default_uri

TRACKING_DEFAULT = default_uri()


def add_parsers(sub) -> None:
    ex = sub.add_parser("export", help="export a finished run's compiled program as a verified bundle (no pickle)")
    ex.add_argument("run", metavar="RUN", help="run id (or unique 8+ character prefix), or an experiment name "
                                               "(its best-scoring run)")
    ex.add_argument("--out", required=True, help="bundle folder to create")
    ex.add_argument("--format", choices=["bundle", "prompt"], default="bundle",
                    help="bundle: the program for workbench.load / serve (default); prompt: the plain chat prompt, "
                         "its JSON schema and a DSPy-free client.py, re-scored through that client")
    ex.add_argument("--base-url", help="with --format prompt: re-score against this OpenAI-compatible endpoint "
                                       "instead of the run's LM")
    ex.add_argument("--force", action="store_true", help="replace --out if it exists and is not empty")
    ex.add_argument("--tolerance", type=float, default=0.01,
                    help="largest score difference allowed when the reloaded bundle is re-evaluated (default 0.01)")
    ex.add_argument("--max-corpus-mb", type=float, default=500.0, metavar="MB",
                    help="refuse to bundle a RAG corpus larger than this (default 500)")
    ex.add_argument("--tracking-uri", default=TRACKING_DEFAULT)
    pr = sub.add_parser("promote", help="register a run's program in the MLflow Model Registry; the champion alias "
                                        "moves only if it beats the champion by a paired test")
    pr.add_argument("run", metavar="RUN", help="run id (or prefix), or an experiment name (its best run)")
    pr.add_argument("--name", required=True, help="registered model name")
    pr.add_argument("--force", action="store_true", help="make it the champion even if the test does not say so "
                                                         "(recorded as a tag)")
    pr.add_argument("--tracking-uri", default=TRACKING_DEFAULT)
    sv = sub.add_parser("serve", help="serve a bundle or a registered model (models:/NAME@champion) over HTTP")
    sv.add_argument("target", metavar="BUNDLE_OR_MODEL_URI")
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--max-body-bytes", type=int, default=64 * 1024, help="largest request body (default 65536)")
    sv.add_argument("--no-cache", action="store_true", help="do not answer repeated requests from the LM cache")
    sv.add_argument("--tracking-uri", default=TRACKING_DEFAULT, help="for models:/ URIs")
    sv.add_argument("--api-key-env", metavar="NAME",
                    help="require `Authorization: Bearer <value of $NAME>` on /predict and /metadata "
                         "(needed to listen beyond loopback)")
    sv.add_argument("--insecure", action="store_true", help="listen beyond loopback without a key (not advised)")
    sv.add_argument("--rate-limit", type=float, default=600, metavar="PER_MINUTE",
                    help="requests per minute per client address before 429 (default 600; 0 = none)")


def export_command(args: argparse.Namespace) -> int:
    from workbench.export.exporter import export_run

    reporter = Reporter()
    if args.format == "prompt":
        from workbench.export.plain_prompt import export_prompt

        p = export_prompt(args.run, args.out, force=args.force, tolerance=args.tolerance,
                          tracking_uri=args.tracking_uri, reporter=reporter, base_url=args.base_url)
        reporter.line(f"exported run {p.run_id}'s plain prompt to {p.path} in {p.seconds:.1f} s: {p.plain_score:.4f} "
                      f"through client.py vs {p.dspy_score:.4f} inside DSPy on {p.n} items (paired difference 95% CI "
                      f"[{p.difference_ci[0]:+.4f}, {p.difference_ci[1]:+.4f}])")
        return 0
    result = export_run(args.run, args.out, force=args.force, tolerance=args.tolerance,
                        tracking_uri=args.tracking_uri, reporter=reporter, max_corpus_mb=args.max_corpus_mb)
    reporter.line(f"exported run {result.run_id} to {result.path} in {result.seconds:.1f} s: score {result.score:.4f}, "
                  f"reloaded bundle {result.verified_score:.4f} on {result.n} examples (verified); "
                  f"bundle {result.bundle_bytes / 1e6:.2f} MB, loads in {result.load_seconds:.1f} s")
    return 0


def promote_command(args: argparse.Namespace) -> int:
    from workbench.export.promote import promote

    reporter = Reporter()
    p = promote(args.run, args.name, force=args.force, tracking_uri=args.tracking_uri, reporter=reporter)
    reporter.line(f"registered {p.name} version {p.version} as {p.alias}: {p.reason}")
    if p.alias == "champion" and p.previous_champion:
        reporter.line(f"version {p.previous_champion} is now the challenger")
    reporter.line(f"serve it: workbench serve models:/{p.name}@{p.alias} (or mlflow models serve -m "
                  f"models:/{p.name}@{p.alias} --env-manager local)")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from workbench.serve import serve

    serve(args.target, host=args.host, port=args.port, max_body_bytes=args.max_body_bytes,
          lm_overrides={"cache": False} if args.no_cache else None, tracking_uri=args.tracking_uri,
          api_key_env=args.api_key_env, insecure=args.insecure, rate_limit=args.rate_limit)
    return 0
