"""Compose the run config with Hydra from conf/ (+ a user --config-dir) and validate it.

This is the one place that knows config keys: types come from the option's own YAML
(the default value declares the type), ranges from RANGE_RULES below.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from runner.errors import ConfigError

GROUPS = ("data", "model", "init", "norm", "activation", "optimizer", "schedule",
          "batch", "augment", "regularize", "trainer", "diagnostics")


# Keys that name, place, time or watch a run without changing what it learns: never grouping
# keys, and two runs that differ only in them (and not in the seed) are duplicates.
# - name, out_dir, progress, checkpoint_every_s: where and how often things are written.
# - log_every: how often the loss is read (divergence is caught a few steps later or at the
#   epoch's end, the weights are the same) and the grad_norm column's sampling.
# - eval_batch_size: the validation pass's batching (sums in another order, nothing learned).
# - diagnostics (and the diagnostics.* group): a probe that takes the same step
#   (test_diagnostics checks the metrics are identical).
# - device, data_on_device, compile, channels_last: where and with which kernels the same
#   arithmetic runs; the same seed gives the same run to float rounding (README), so a rerun
#   on a GPU is a duplicate of the CPU run, not a new sample. --by trainer.device still
#   separates them (for wall_time_s).
# Not bookkeeping: precision (bf16/fp16 change the training itself), and every other key.
BOOKKEEPING_KEYS = ("trainer.name", "trainer.out_dir", "trainer.progress", "trainer.checkpoint_every_s",
                    "trainer.log_every", "trainer.eval_batch_size", "trainer.diagnostics",
                    "trainer.device", "trainer.data_on_device", "trainer.compile", "trainer.channels_last")
BOOKKEEPING_PREFIXES = ("diagnostics.",)


def is_bookkeeping(key: str) -> bool:
    """A dotted config key that does not change what a run learns (see above)."""
    return key in BOOKKEEPING_KEYS or key.startswith(BOOKKEEPING_PREFIXES)


def builtin_config_dir() -> Path:
    """conf/ ships inside the wheel as runner/conf; a source checkout has it beside runner/."""
    here = Path(__file__).resolve().parents[1]  # the runner package
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(f"optlab's built-in configs are missing (looked in {here / 'conf'})")


def builtin_sweeps_dir() -> Path:
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "sweeps", here.parent / "sweeps"):
        if candidate.is_dir():
            return candidate
    return here.parent / "sweeps"


def search_dirs(config_dir: str | None) -> list[Path]:
    """The user's folder comes first so its options override built-in ones of the same name."""
    dirs = [builtin_config_dir()]
    if config_dir:
        user = Path(config_dir).expanduser().resolve()
        if not user.is_dir():
            raise ConfigError(f"--config-dir {config_dir}: no such folder")
        dirs.insert(0, user)
    return dirs


def group_options(group: str, config_dir: str | None = None) -> list[str]:
    names = set()
    for root in search_dirs(config_dir):
        names |= {p.stem for p in (root / group).glob("*.yaml")}
    return sorted(names)


# ---------------------------------------------------------------- composition

class UnknownKey(ConfigError):
    """A dotted key that the chosen option of its group does not define."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def compose(overrides: Sequence[str] = (), config_dir: str | None = None) -> DictConfig:
    """The composed config for these Hydra overrides, validated; raises ConfigError."""
    parsed = parse_overrides(overrides)
    _check_supported(parsed)
    _check_group_choices(parsed, config_dir)
    try:
        # Hydra refuses to delete a key whose value is null, so deletions are applied here
        cfg = _hydra_compose([o.input_line for o in parsed if not o.is_delete()], config_dir)
        reference = _hydra_compose(_group_selections(parsed), config_dir)
        for deletion in (o for o in parsed if o.is_delete()):
            _delete(cfg, reference, deletion)
        validate(cfg, reference)
    except UnknownKey as exc:
        raise ConfigError(_unknown_key_message(exc.key, parsed, config_dir)) from exc
    return cfg


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
            reason = _one_line(str(exc)).split(" See https://")[0]
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
        raise ConfigError(_one_line(str(exc))) from exc
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


def _group_selections(parsed: list) -> list[str]:
    return [o.input_line for o in parsed if o.key_or_group in GROUPS]


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
            if _text(name) not in options:
                raise ConfigError(f"{group}={_text(name)}: unknown {group}; choose from: {', '.join(options)}")


def _delete(cfg: DictConfig, reference: DictConfig, override) -> None:
    """`~key` or `~key=value` (only when the key has that value), as Hydra deletes; a key whose
    option gives it a value is required: only keys whose default is null can be deleted."""
    key = override.key_or_group
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf not in parent:
        raise _unknown_key(key)
    expected, current = override.value(), OmegaConf.select(cfg, key)
    if expected is not None and current != expected:
        raise ConfigError(f"{override.input_line}: {key} is {_text(current)}, not {_text(expected)}: nothing deleted")
    if OmegaConf.select(reference, key) is not None:
        raise ConfigError(f"{override.input_line}: {key} is required and cannot be deleted (only keys "
                          f"whose default is null can be); set a value instead")
    del parent[leaf]


def _explain_hydra_error(exc: Exception) -> ConfigError:
    text = str(exc)
    match = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if match:
        return _unknown_key(match.group(1))
    return ConfigError(_one_line(text))


def _unknown_key(key: str) -> ConfigError:
    group = key.split(".")[0]
    if group in GROUPS and "." in key:
        return UnknownKey(key, f"{key}: unknown key in group '{group}'")
    return ConfigError(f"{key}: unknown key; top-level groups are: {', '.join(GROUPS)}")


def _unknown_key_message(key: str, parsed: list, config_dir: str | None) -> str:
    """Which option was chosen, which other options have the key, and the chosen one's keys."""
    group, _, sub = key.partition(".")
    chosen = _chosen_options(group, parsed, config_dir)
    choice = f"{group}={chosen[0]}" if len(chosen) == 1 else f"{group}=[{','.join(chosen)}]"
    keys = {name: option_keys(group, name, config_dir) for name in group_options(group, config_dir)}
    parts = [f"{key}: unknown key, not a key of {choice}"]
    having = [f"{group}={name}" for name, names in keys.items() if sub in names and name not in chosen]
    if having:
        parts.append(f"{_and_join(having)} {'has' if len(having) == 1 else 'have'} it")
    valid = [k for name in chosen for k in keys.get(name, [])]
    parts.append(f"the keys of {choice}: {', '.join(valid) or '(none)'}")
    return "; ".join(parts)


def _chosen_options(group: str, parsed: list, config_dir: str | None) -> list[str]:
    for o in reversed(parsed):
        if o.key_or_group == group:
            value = o.value()
            return [_text(v) for v in value] if isinstance(value, list) else [_text(value)]
    choices = _hydra_compose([], config_dir, hydra_config=True).hydra.runtime.choices
    return [str(choices[group])] if choices.get(group) else []


def option_keys(group: str, name: str, config_dir: str | None = None) -> list[str]:
    """An option's dotted keys below its group, `name` aside, in the YAML's order; a
    `# @package augment.crop` header puts them under crop."""
    from runner.config.catalogue import option_file

    text = option_file(group, name, config_dir).read_text()
    values = yaml.safe_load(text) or {}
    header = re.search(r"^#\s*@package\s+(\S+)", text, re.MULTILINE)
    package = header.group(1).replace("_group_", group) if header else group
    below = package.removeprefix(group).lstrip(".")
    prefix = f"{below}." if below else ""
    return [f"{prefix}{key}" for key, _ in flatten(values) if key != "name"]


def _and_join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _text(value: Any) -> str:
    """A value as typed on the command line."""
    return "null" if value is None else str(value)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


# ---------------------------------------------------------------- validation

def _positive(v): return v > 0
def _non_negative(v): return v >= 0
def _at_least_one(v): return v >= 1
def _open_unit(v): return 0 < v < 1
def _unit(v): return 0 <= v <= 1
def _half_open_unit(v): return 0 <= v < 1


@dataclass(frozen=True)
class Rule:
    check: Callable[[Any], bool]
    expect: str


RANGE_RULES: dict[str, Rule] = {
    "optimizer.lr": Rule(_positive, "> 0"),
    "optimizer.weight_decay": Rule(_non_negative, ">= 0"),
    "optimizer.momentum": Rule(_half_open_unit, "in [0, 1)"),
    "optimizer.eps": Rule(_positive, "> 0"),
    "batch.size": Rule(_at_least_one, ">= 1"),
    "batch.base_size": Rule(_at_least_one, ">= 1"),
    "trainer.val_fraction": Rule(_open_unit, "in (0, 1)"),
    "trainer.epochs": Rule(_non_negative, ">= 0"),
    "trainer.eval_batch_size": Rule(_at_least_one, ">= 1"),
    "trainer.log_every": Rule(_at_least_one, ">= 1"),
    "trainer.checkpoint_every_s": Rule(_non_negative, ">= 0"),
    "diagnostics.every": Rule(_at_least_one, ">= 1"),
    "diagnostics.batch_size": Rule(_at_least_one, ">= 1"),
    "model.depth": Rule(_non_negative, ">= 0"),
    "model.width": Rule(_at_least_one, ">= 1"),
    "model.channels": Rule(_at_least_one, ">= 1"),
    "model.dropout": Rule(_half_open_unit, "in [0, 1)"),
    "model.blocks": Rule(_at_least_one, ">= 1"),
    "init.std": Rule(_non_negative, ">= 0"),
    "init.r": Rule(_non_negative, ">= 0"),
    "init.gain": Rule(_positive, "> 0"),
    "norm.eps": Rule(_positive, "> 0"),
    "norm.momentum": Rule(_unit, "in [0, 1]"),
    "norm.groups": Rule(_at_least_one, ">= 1"),
    "activation.slope": Rule(_non_negative, ">= 0"),
    "activation.alpha": Rule(_positive, "> 0"),
    "data.n_features": Rule(_at_least_one, ">= 1"),
    "data.n_samples": Rule(_at_least_one, ">= 2"),
    "data.classes": Rule(_at_least_one, ">= 1"),
    "data.cluster_std": Rule(_positive, "> 0"),
    "data.noise": Rule(_non_negative, ">= 0"),
    "schedule.warmup_epochs": Rule(_non_negative, ">= 0"),
    "schedule.gamma": Rule(_positive, "> 0"),
    "schedule.step_size": Rule(_at_least_one, ">= 1"),
    "schedule.min_lr": Rule(_non_negative, ">= 0"),
    "schedule.k": Rule(_non_negative, ">= 0"),
    "schedule.max_lr": Rule(_positive, "> 0"),
    "schedule.pct_start": Rule(_open_unit, "in (0, 1)"),
    "schedule.div_factor": Rule(_positive, "> 0"),
    "schedule.final_div_factor": Rule(_positive, "> 0"),
    "schedule.factor": Rule(_open_unit, "in (0, 1)"),
    "schedule.patience": Rule(_non_negative, ">= 0"),
    "schedule.threshold": Rule(_half_open_unit, "in [0, 1)"),
    "schedule.min_scale": Rule(_unit, "in [0, 1]"),
    "optimizer.alpha": Rule(_half_open_unit, "in [0, 1)"),
    "optimizer.initial_accumulator_value": Rule(_non_negative, ">= 0"),
    "batch.factor": Rule(_at_least_one, ">= 1"),
    "augment.flip.p": Rule(_unit, "in [0, 1]"),
    "augment.crop.padding": Rule(_non_negative, ">= 0"),
    "augment.translate.max_shift": Rule(_non_negative, ">= 0"),
    "augment.noise.std": Rule(_non_negative, ">= 0"),
    "augment.cutout.size": Rule(_at_least_one, ">= 1"),
    "augment.mixup.alpha": Rule(_positive, "> 0"),
    "regularize.l1": Rule(_non_negative, ">= 0"),
    "regularize.l2": Rule(_non_negative, ">= 0"),
    "regularize.label_smoothing": Rule(_half_open_unit, "in [0, 1)"),
    "regularize.clip_norm": Rule(_positive, "> 0"),
    "regularize.clip_value": Rule(_positive, "> 0"),
    "regularize.dropout": Rule(_half_open_unit, "in [0, 1)"),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "schedule.interval": ("epoch", "step"),
    "trainer.precision": ("32", "bf16", "16"),
    "init.mode": ("fan_in", "fan_out"),
    "norm.position": ("pre", "post"),
    "trainer.data_on_device": ("auto", "true", "false"),
    "data.task": ("classification", "regression"),
    "data.label_mode": ("fine", "coarse"),
}

# Keys that take a number (ranged by RANGE_RULES) or one of these words.
NUMBER_OR_WORDS: dict[str, tuple[str, ...]] = {
    "init.gain": ("activation",),
}

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def validate(cfg: DictConfig, reference: DictConfig | None = None) -> None:
    """Types against the option's defaults (reference), then ranges and choices."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # an interpolation that does not resolve
        raise ConfigError(_one_line(str(exc))) from exc
    if reference is not None:
        _check_types(resolved, OmegaConf.to_container(reference, resolve=True), "", cfg)
    flat = dict(flatten(resolved))
    for key, rule in RANGE_RULES.items():
        value = flat.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not (math.isfinite(value) and rule.check(value)):
                raise ConfigError(f"{_as_written(cfg, key, value)}: must be {rule.expect}")
    for key, words in NUMBER_OR_WORDS.items():
        value = flat.get(key)
        if value is not None and not _is_number(value) and value not in words:
            raise ConfigError(f"{key}={_choice_text(value)}: choose from: {', '.join(words)}, "
                              f"or a number {RANGE_RULES[key].expect}")
    for key, choices in CHOICES.items():
        if key in flat and flat[key] is not None and _choice_text(flat[key]) not in choices:
            raise ConfigError(f"{_as_written(cfg, key, flat[key])}: choose from: {', '.join(choices)}")
    device = str(flat.get("trainer.device", "auto"))
    if not DEVICE_PATTERN.match(device):
        raise ConfigError(f"trainer.device={device}: choose from: auto, cpu, cuda, cuda:N")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choice_text(value: Any) -> str:
    """A choice as written on the command line: YAML booleans read back as true/false."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _check_types(value: Any, default: Any, key: str, cfg: DictConfig) -> None:
    """`value` (resolved) against the option's `default`: the same type, and null only where
    the default is null."""
    if value is None:
        if default is not None:
            raise ConfigError(f"{_as_written(cfg, key, value)}: expected {_type_name(default)}, not null "
                              f"(only keys whose default is null can be null)")
        return
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{_as_written(cfg, key, value)}: expected {_type_name(default)}")
        for sub, sub_value in value.items():
            path = f"{key}.{sub}" if key else str(sub)
            if sub not in default:
                raise _unknown_key(path)
            _check_types(sub_value, default[sub], path, cfg)
        return
    if default is None or key in CHOICES or key in NUMBER_OR_WORDS:  # checked in validate()
        return
    if not _TYPE_CHECKS.get(type(default), lambda v: True)(value):
        raise ConfigError(f"{_as_written(cfg, key, value)}: expected {_type_name(default)}")


_TYPE_CHECKS: dict[type, Callable[[Any], bool]] = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    str: lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool),
    list: lambda v: isinstance(v, list),
}


def _as_written(cfg: DictConfig, key: str, value: Any) -> str:
    """`key=value` as typed; an interpolation also shows what it resolved to."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, throw_on_resolution_failure=False) if parent_key else cfg
    if not (isinstance(parent, DictConfig) and leaf in parent and OmegaConf.is_interpolation(parent, leaf)):
        return f"{key}={_text(value)}"
    written = OmegaConf.to_container(parent, resolve=False)[leaf]
    resolved = repr(value) if isinstance(value, str) else _text(value)
    return f"{key}={written} resolves to {resolved}"


def flatten(tree: Any, prefix: str = ""):
    """Yield (dotted key, leaf value) pairs of a nested dict."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, tree


# ---------------------------------------------------------------- run folders

def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def load_run_config(run_dir: Path) -> DictConfig:
    from runner.errors import DataError

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DataError(f"{run_dir}: not a run folder (no config.yaml)")
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # YAML syntax, a binary file, a scalar: the file is damaged
        raise DataError(f"{path}: damaged, not a config ({_one_line(str(exc))[:200]})") from None
    if not isinstance(cfg, DictConfig):
        raise DataError(f"{path}: damaged, not a mapping of config groups")
    validate(cfg)
    return cfg


def as_plain(node: Any) -> Any:
    """OmegaConf nodes -> plain Python containers (pass-through for other values)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node
