"""Many runs: Optuna sweeps and Hydra-style grids (-m).

spec (a sweep file parsed, frozen) -> build (the one spec a sweep starts with, validated once)
-> run (storage and study, workers, outputs), with space (sampling, probes, refinement),
study (Optuna study, fingerprint, budget), storage (the one opener), objective (one trial),
workers (processes), signals (the one signal contract), outputs (trials.csv, best.yaml,
sweep.json); multirun runs `optlab train -m` grids.
"""
