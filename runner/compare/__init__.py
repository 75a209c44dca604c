"""Comparisons: contenders tuned alike on several workloads; performance profiles, a score, verdicts."""
