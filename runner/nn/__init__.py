"""The network: models, their layers (normalization and activation), and initialization."""
