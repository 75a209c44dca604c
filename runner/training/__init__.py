"""One run: build its parts, the loop, its state and checkpoints, per-layer diagnostics, the lr range test."""
