"""optlab: a command-line lab for studying how neural networks train."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("optlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
