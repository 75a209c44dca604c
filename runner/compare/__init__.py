"""Comparisons: contenders tuned alike on several workloads, performance profiles, an AlgoPerf score, pairwise verdicts."""
