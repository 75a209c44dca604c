"""optlab: a command-line lab for studying how neural networks train.

The public API is what `__all__` names (optlab.api holds it): compose, train, train_many,
sweep, report, study, and OptlabError. `import optlab` stays cheap, because the console
script imports this package too: the API is loaded on first use.

`optlab.sweep`, `optlab.report` and `optlab.study` are also the packages that implement
those commands. Those three packages are callable: `optlab.report(paths, by="optimizer")`
calls optlab.api.report, and `from optlab import report` still gives the package.
"""
import sys
import types
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("optlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["OptlabError", "compose", "report", "study", "sweep", "train", "train_many"]

_FUNCTIONS = ("compose", "train", "train_many")
_CALLABLE_PACKAGES = ("report", "study", "sweep")


class _CommandPackage(types.ModuleType):
    """A sub-package that is also its command's API function."""

    def __call__(self, *args, **kwargs):
        from optlab import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    # The import system sets each sub-package as an attribute of this one when it is first
    # imported, from wherever: that is the one moment every import path goes through.
    def __setattr__(self, name, value):
        if name in _CALLABLE_PACKAGES and isinstance(value, types.ModuleType):
            value.__class__ = _CommandPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name):
    if name in _FUNCTIONS:
        from optlab import api

        return getattr(api, name)
    if name in _CALLABLE_PACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name == "OptlabError":
        from optlab.errors import OptlabError

        return OptlabError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
