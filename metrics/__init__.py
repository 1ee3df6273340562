"""Metrics: per-example scorers (`@metric`) and corpus-level summaries (`@summary`)."""
