"""Compose the run config with Hydra from conf/ (+ a user --config-dir); validate.py checks it.

What keys an option takes, their types, ranges and choices is its spec's to say (the
component registries, runner/registry.py); this module only composes and explains.
"""
from __future__ import annotations

import copy
import difflib

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from optlab import safe_yaml
from optlab.config.specs import GROUPS
from optlab.config.validate import (
    UnknownKey,
    flatten,  # noqa: F401  (report and sweep import it from here)
    is_required,
    one_line,
    unknown_key,
    validate,
)
from optlab.errors import ConfigError, choose_from
from optlab.registry import as_typed
from optlab.shipped import shipped_dir

# Keys that name, place, time or watch a run without changing what it learns: never grouping
# keys, and two runs that differ only in them (and not in the seed) are duplicates.
# - name, out_dir, progress, checkpoint_every_s: where and how often things are written.
# - log_every: how often the loss is read (divergence is caught a few steps later or at the
#   epoch's end, the weights are the same) and the grad_norm column's sampling.
# - eval_batch_size: the validation pass's batching (sums in another order, nothing learned).
# - diagnostics (and the diagnostics.* group): a probe that takes the same step
#   (test_diagnostics checks the metrics are identical).
# - tensorboard: event files written from each epoch's row (test_tensorboard checks the
#   metrics are identical).
# - threads: how many CPU threads run the same arithmetic (sums may split differently, so
#   results are bitwise repeatable at a fixed count, equal to float rounding across counts).
# - device, data_on_device, compile, channels_last: where and with which kernels the same
#   arithmetic runs; the same seed gives the same run to float rounding (README), so a rerun
#   on a GPU is a duplicate of the CPU run, not a new sample. --by trainer.device still
#   separates them (for wall_time_s).
# Not bookkeeping: precision (bf16/fp16 change the training itself), and every other key.
BOOKKEEPING_KEYS = ("trainer.name", "trainer.out_dir", "trainer.progress", "trainer.checkpoint_every_s",
                    "trainer.log_every", "trainer.eval_batch_size", "trainer.diagnostics",
                    "trainer.device", "trainer.data_on_device", "trainer.compile", "trainer.channels_last",
                    "trainer.tensorboard", "trainer.threads")
BOOKKEEPING_PREFIXES = ("diagnostics.",)


def is_bookkeeping(key: str) -> bool:
    """A dotted config key that does not change what a run learns (see above)."""
    return key in BOOKKEEPING_KEYS or key.startswith(BOOKKEEPING_PREFIXES)


def builtin_config_dir() -> Path:
    return shipped_dir("conf")


def search_dirs(config_dir: str | None) -> list[Path]:
    """The user's folder comes first so its options override built-in ones of the same name."""
    dirs = [builtin_config_dir()]
    if config_dir:
        user = Path(config_dir).expanduser().resolve()
        if not user.is_dir():
            raise ConfigError(f"--config-dir {config_dir}: no such folder")
        check_user_files(user)
        dirs.insert(0, user)
    return dirs


_checked: dict[Path, tuple] = {}  # a user's config folder -> its files as last checked


def check_user_files(folder: Path) -> None:
    """Every YAML file of a --config-dir within safe_yaml's bounds, before Hydra, the option
    catalogue or a launcher reads one (checked again only when a file changed)."""
    files = sorted(p for p in [*folder.glob("*.yaml"), *folder.glob("*/*.yaml")] if p.is_file())  # DIR/group/NAME.yaml
    stamp = tuple((p, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    if _checked.get(folder) == stamp:
        return
    for path in files:
        safe_yaml.load_file(path, where=f"--config-dir {path}")
    _checked[folder] = stamp


def group_options(group: str, config_dir: str | None = None) -> list[str]:
    names = set()
    for root in search_dirs(config_dir):
        names |= {p.stem for p in (root / group).glob("*.yaml")}
    return sorted(names)


def option_file(group: str, name: str, config_dir: str | None = None) -> Path:
    for root in search_dirs(config_dir):
        path = root / group / f"{name}.yaml"
        if path.is_file():
            return path
    raise ConfigError(f"{group}={name}: unknown {group}; {choose_from(name, group_options(group, config_dir))}")


# ---------------------------------------------------------------- composition

def compose(overrides: Sequence[str] = (), config_dir: str | None = None, import_targets: bool = True) -> DictConfig:
    """The composed config for these Hydra overrides, validated; raises ConfigError.
    import_targets=False (a config only printed): your own components are not imported."""
    parsed = parse_overrides(overrides)
    _check_supported(parsed)
    _check_group_choices(parsed, config_dir)
    try:
        # Hydra refuses to delete a key whose value is null, so deletions are applied here
        cfg = _hydra_compose([o.input_line for o in parsed if not o.is_delete()], config_dir)
        for deletion in (o for o in parsed if o.is_delete()):
            _delete(cfg, deletion)
        validate(cfg, import_targets=import_targets)
    except UnknownKey as exc:
        raise ConfigError(_unknown_key_message(exc.key, parsed, config_dir)) from exc
    return cfg


class Composer:
    """compose() for many override lists that share their group choices (a sweep's trials):
    Hydra composes each distinct rest once; overrides that only change the value of a key
    the composed config has (`optimizer.lr=0.01`) are applied to a copy and validated. The
    result is the config compose(overrides) gives (a test checks it)."""

    def __init__(self, config_dir: str | None = None, import_targets: bool = True):
        self.config_dir, self.composed, self.import_targets = config_dir, {}, import_targets

    def __call__(self, overrides: Sequence[str]) -> DictConfig:
        parsed = parse_overrides(overrides)
        values = [o for o in parsed if _is_value_change(o)]
        rest = tuple(o.input_line for o in parsed if not _is_value_change(o))
        if rest not in self.composed:  # its `_target_` may be one of the values: imported once they are set
            self.composed[rest] = compose(rest, self.config_dir, import_targets=False)
        cfg = copy.deepcopy(self.composed[rest])
        if not all(OmegaConf.select(cfg, o.key_or_group, default=_MISSING) is not _MISSING for o in values):
            return compose(overrides, self.config_dir, self.import_targets)  # an unknown key: compose() names it
        for o in values:
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
        validate(cfg, import_targets=self.import_targets)
        return cfg


_MISSING = object()
_COMPOSERS: dict[str | None, Composer] = {}


def shared_composer(config_dir: str | None = None) -> Composer:
    """This process's Composer for `config_dir`: a sweep composes its base once (its start,
    its probe checks, each worker's warm-up and trials all draw on it) and gives each trial a
    copy with the trial's values. Its configs are copies: a caller may change them."""
    if config_dir not in _COMPOSERS:
        _COMPOSERS[config_dir] = Composer(config_dir)
    return _COMPOSERS[config_dir]


def _is_value_change(override) -> bool:
    """key=value on a dotted key, a plain value: no group choice, no +/++/~, no interpolation."""
    from hydra.core.override_parser.types import OverrideType

    value = override.value()
    return (override.type == OverrideType.CHANGE and not override.is_sweep_override() and "." in override.key_or_group
            and "/" not in override.key_or_group and not (isinstance(value, str) and "${" in value)
            and not isinstance(value, (list, dict)))


def parse_overrides(overrides: Sequence[str]) -> list:
    """Hydra's Override objects: key=value, +key=value, ++key=value, ~key[=value],
    group=option, sweeps (a=1,2, range(...), glob(...)), ${...} interpolations."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        if "=" not in text and not text.lstrip().startswith("~"):
            raise ConfigError(f"{text}: an override must look like key=value (e.g. optimizer.lr=0.01)")
        try:
            parsed += parser.parse_overrides([text])
        except HydraException as exc:
            reason = one_line(str(exc)).split(" See https://")[0]
            raise ConfigError(f"{text}: not a valid override ({reason}); "
                              f"see https://hydra.cc/docs/advanced/override_grammar/basic/") from None
    return parsed


def _check_supported(parsed: list) -> None:
    for o in parsed:
        if re.split(r"[./]", o.key_or_group)[0] == "hydra":
            raise ConfigError(f"{o.input_line}: optlab does not use Hydra's job settings (hydra.*); runs go "
                              f"to trainer.out_dir/runs/<timestamp>-<trainer.name>: set trainer.out_dir "
                              f"and trainer.name instead")
        if o.is_interval_sweep():
            raise ConfigError(f"{o.input_line}: an interval is a search space; search it with optlab sweep")
        if o.is_sweep_override():
            raise ConfigError(f"{o.input_line}: several values make a sweep, which needs -m "
                              f"(optlab train -m {o.input_line})")


def _hydra_compose(overrides: list[str], config_dir: str | None, hydra_config: bool = False) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with _hydra_search_path(search_dirs(config_dir)):
            cfg = hydra_compose("config", overrides=overrides, return_hydra_config=hydra_config)
    except MissingConfigException as exc:
        raise ConfigError(one_line(str(exc))) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        raise _explain_hydra_error(exc) from exc
    OmegaConf.set_struct(cfg, False)
    return cfg


@contextmanager
def _hydra_search_path(dirs: list[Path]):
    """Initialize Hydra with these config dirs, first one searched first.

    `hydra.searchpath` entries go after the primary dir, and the primary dir must hold
    config.yaml, so a user's folder of extra options is prepended by hand instead.
    """
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    search_path = create_config_search_path(str(dirs[-1]))
    for extra in reversed(dirs[:-1]):
        search_path.prepend("optlab --config-dir", f"file://{extra}", anchor="main")
    GlobalHydra.instance().clear()
    Hydra.create_main_hydra2(task_name="optlab", config_search_path=search_path)  # sets GlobalHydra
    try:
        yield
    finally:
        GlobalHydra.instance().clear()


def _check_group_choices(parsed: list, config_dir: str | None) -> None:
    for o in parsed:
        group = o.key_or_group
        if group not in GROUPS:
            continue
        options = group_options(group, config_dir)
        if o.is_delete():
            raise ConfigError(f"{o.input_line}: every config group is required; "
                              f"choose {group}=OPTION from: {', '.join(options)}")
        value = o.value()
        if isinstance(value, list) and group != "augment":
            raise ConfigError(f"{o.input_line}: {group} takes one option (only augment takes a list); "
                              f"choose from: {', '.join(options)}")
        if value == []:
            raise ConfigError(f"{o.input_line}: choose at least one option ({group}=none for none)")
        for name in value if isinstance(value, list) else [value]:
            if as_typed(name) not in options:
                raise ConfigError(f"{group}={as_typed(name)}: unknown {group}; {choose_from(as_typed(name), options)}")


def _delete(cfg: DictConfig, override) -> None:
    """`~key` or `~key=value` (only when the key has that value), as Hydra deletes; a key whose
    option's spec gives it a value is required: only keys whose default is null can be deleted."""
    key = override.key_or_group
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf not in parent:
        raise unknown_key(key)
    expected, current = override.value(), OmegaConf.select(cfg, key)
    if expected is not None and current != expected:
        raise ConfigError(f"{override.input_line}: {key} is {as_typed(current)}, not {as_typed(expected)}: nothing deleted")
    if is_required(cfg, key):
        raise ConfigError(f"{override.input_line}: {key} is required and cannot be deleted (only keys "
                          f"whose default is null can be); set a value instead")
    del parent[leaf]


def _explain_hydra_error(exc: Exception) -> ConfigError:
    text = str(exc)
    match = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if match:
        return unknown_key(match.group(1))
    return ConfigError(one_line(text))


def _unknown_key_message(key: str, parsed: list, config_dir: str | None) -> str:
    """Which option was chosen, which other options have the key, and the chosen one's keys."""
    from optlab.config.catalogue import option_keys

    group, _, sub = key.partition(".")
    chosen = _chosen_options(group, parsed, config_dir)
    choice = f"{group}={chosen[0]}" if len(chosen) == 1 else f"{group}=[{','.join(chosen)}]"
    keys = {name: option_keys(group, name, config_dir) for name in group_options(group, config_dir)}
    parts = [f"{key}: unknown key, not a key of {choice}"]
    having = [f"{group}={name}" for name, names in keys.items() if sub in names and name not in chosen]
    if having:
        parts.append(f"{_and_join(having)} {'has' if len(having) == 1 else 'have'} it")
    valid = [k for name in chosen for k in keys.get(name, [])]
    close = [] if having else difflib.get_close_matches(sub, valid, n=1, cutoff=0.6)  # a typo, not another option's key
    keys_of = f"the keys of {choice}: {', '.join(valid) or '(none)'}"
    parts.append(f"did you mean {group}.{close[0]}? {keys_of}" if close else keys_of)
    return "; ".join(parts)


def _chosen_options(group: str, parsed: list, config_dir: str | None) -> list[str]:
    for o in reversed(parsed):
        if o.key_or_group == group:
            value = o.value()
            return [as_typed(v) for v in value] if isinstance(value, list) else [as_typed(value)]
    choices = _hydra_compose([], config_dir, hydra_config=True).hydra.runtime.choices
    return [str(choices[group])] if choices.get(group) else []


def _and_join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


# ---------------------------------------------------------------- run folders

def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def load_run_config(run_dir: Path) -> DictConfig:
    """A run folder's config.yaml; a file that is not a run's config (damaged, binary, past
    safe_yaml's bounds, a group missing or a value out of its range) is a DataError."""
    from optlab.errors import DataError

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DataError(f"{run_dir}: not a run folder (no config.yaml)")
    text = safe_yaml.read_file(path, DataError, where=f"{path}: damaged")
    safe_yaml.check_text(text, f"{path}: damaged", DataError)
    try:
        cfg = OmegaConf.create(text)
    except Exception as exc:  # YAML syntax, a scalar: the file is damaged
        raise DataError(f"{path}: damaged, not a config ({one_line(str(exc))[:200]})") from None
    if not isinstance(cfg, DictConfig):
        raise DataError(f"{path}: damaged, not a mapping of config groups")
    missing = [group for group in GROUPS if not isinstance(cfg.get(group), DictConfig)]
    if missing:
        raise DataError(f"{path}: damaged, not a run's config (no {', '.join(missing)} mapping)")
    try:
        validate(cfg, strict=False)  # values only: a run may predate today's keys
    except ConfigError as exc:
        raise DataError(f"{path}: damaged: {exc}") from None
    return cfg


def as_plain(node: Any) -> Any:
    """OmegaConf nodes -> plain Python containers (pass-through for other values)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node
