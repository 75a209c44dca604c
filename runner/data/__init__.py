"""Datasets as tensors: sources (built in, generated, on disk), the validation split, standardization, loaders, augmentation."""
from optlab.data import builtin, disk, generated  # noqa: F401  (each source registers its datasets)
