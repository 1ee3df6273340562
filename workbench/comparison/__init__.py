"""Comparing runs: paired statistics, leaderboards, changed examples, prompt diffs, plots."""
