"""The launcher options (conf/launcher/*.yaml): their keys, a user's own file, launcher.KEY=VALUE overrides."""
from __future__ import annotations

from dataclasses import asdict

import pytest
import yaml

from optlab.config.compose import builtin_config_dir
from optlab.errors import ConfigError
from optlab.sweep.launcher import KEYS, Launcher, launcher_overrides, load_launcher


def test_the_builtin_slurm_file_declares_every_key_with_the_specs_defaults():
    raw = yaml.safe_load((builtin_config_dir() / "launcher" / "slurm.yaml").read_text())
    assert set(raw) == set(KEYS) - {"name"}
    defaults = asdict(Launcher())
    assert {k: v for k, v in raw.items() if k != "kind"} == \
        {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items() if k not in ("name", "kind")}
    assert load_launcher("slurm").kind == "slurm" and load_launcher("local").kind == "local"


def test_overrides_are_read_as_yaml_and_split_from_the_training_configs():
    ours, theirs = launcher_overrides(["trainer.epochs=3", "launcher.partition=gpu", "launcher.setup=[module load cuda]",
                                       "launcher.additional_parameters={mail-type: END}", "launcher.mem_gb=16"])
    assert theirs == ["trainer.epochs=3"]
    launcher = load_launcher("slurm", None, ours)
    assert (launcher.partition, launcher.setup, launcher.additional_parameters, launcher.mem_gb) == \
        ("gpu", ("module load cuda",), {"mail-type": "END"}, 16.0)


def test_an_unknown_key_names_it_and_the_valid_keys():
    with pytest.raises(ConfigError, match=r"^launcher.partitoin \(.*slurm.yaml\): unknown key; valid keys: name, kind, "
                                          r"partition, account"):
        load_launcher("slurm", None, ["launcher.partitoin=gpu"])


@pytest.mark.parametrize("override, message", [("launcher.time_min=0", "time_min=0: must be an integer >= 1"),
                                               ("launcher.gpus_per_worker=-1", "gpus_per_worker=-1: must be"),
                                               ("launcher.mem_gb=lots", "mem_gb=lots: must be a number"),
                                               ("launcher.setup={a: 1}", "setup .*: a list of shell lines")])
def test_bad_values_are_refused_with_one_line(override, message):
    with pytest.raises(ConfigError, match=message):
        load_launcher("slurm", None, [override])


def test_a_users_config_dir_adds_launchers_and_unknown_names_list_them(tmp_path):
    (tmp_path / "launcher").mkdir()
    (tmp_path / "launcher" / "gpu.yaml").write_text("kind: slurm\npartition: a100\ngpus_per_worker: 1\n")
    launcher = load_launcher("gpu", str(tmp_path))
    assert (launcher.name, launcher.kind, launcher.partition, launcher.gpus_per_worker) == ("gpu", "slurm", "a100", 1)
    with pytest.raises(ConfigError, match=r"^--launcher cloud: unknown; choose from: gpu, local, slurm$"):
        load_launcher("cloud", str(tmp_path))
