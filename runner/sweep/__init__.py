"""Many runs: Optuna sweeps (spec, space, study, workers, outputs) and Hydra-style grids (-m)."""
