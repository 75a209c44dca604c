"""Compose the run config with Hydra from conf/ (+ a user --config-dir), check it, list its options."""
