"""Specs: defaults fill every key and refuse unknown ones; null follows the default, or a key's kind;
your own components (`_target_`) import, check their signature, train, and fail in one line."""
import csv
import json
import sys

import pytest
import torch

from optlab.config.specs import named_registries
from optlab.optim.schedules import SCHEDULES
from optlab.registry import Key, import_target
from optlab.training.build import build
from optlab.training.api import train
from optlab.training.grouping import why_solo


def test_spec_defaults_fill_every_key_and_refuse_unknown_ones():
    assert SCHEDULES.get("cosine").defaults(min_lr=0.01) == {
        "name": "cosine", "min_lr": 0.01, "warmup_epochs": 0, "interval": "step"}
    with pytest.raises(KeyError, match="gamma: not a key of cosine"):
        SCHEDULES.get("cosine").defaults(gamma=0.5)
    assert named_registries()["init"].get("constant").defaults(**{"bias.name": "constant"})["bias"] == {
        "name": "constant", "value": 0.0}


def test_null_follows_the_default_and_kind_types_a_null_default():
    lr, max_lr = Key("lr", 0.1), Key("max_lr", None, kind=float)
    assert lr.complaint(None).startswith("expected a number, not null")
    assert max_lr.complaint(None) is None and max_lr.complaint("high") == "expected a number"


# ---------------------------------------------------------------- your own components (_target_)

USER_CODE = {
    "nets.py": '''
import math
import torch.nn as nn


def build(cfg, input_shape, out_dim):
    width = int(cfg["width"])
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.Tanh(), nn.Linear(width, out_dim))


def no_shape(cfg, out_dim):
    return None


def not_a_module(cfg, input_shape, out_dim):
    return "a string"
''',
    "rules.py": '''
import torch


def ones(cfg, module):
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(float(cfg["value"]))


def plain_sgd(cfg, params):
    return torch.optim.SGD(params, lr=cfg["lr"])


def halve(cfg, lr0, t, total):
    return lr0 * 0.5 ** (t // cfg["every"])
''',
}


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A package `userpkg` of the user's own code in tmp_path/lib, on sys.path."""
    package = tmp_path / "lib" / "userpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, text in USER_CODE.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    yield package
    for name in [m for m in sys.modules if m.startswith("userpkg")]:
        del sys.modules[name]
    import_target.cache_clear()


def rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_a_users_model_builder_is_trained_through_model_target(user_package, compose_cfg):
    cfg = compose_cfg("model=custom", "model._target_=userpkg.nets:build", "+model.width=7", "trainer.epochs=2")
    result = train(cfg)
    assert result.status == "completed"
    model = build(cfg).model
    assert [tuple(p.shape) for p in model.parameters()] == [(7, 64), (7,), (10, 7), (10,)]  # digits: 8x8, 10 classes
    table = rows(result.run_dir)
    assert float(table[-1]["train_loss"]) < float(table[0]["train_loss"])
    assert why_solo(cfg) == "model._target_=userpkg.nets:build: your own code trains one run"


def test_a_users_init_optimizer_and_schedule_do_what_they_say(user_package, compose_cfg):
    cfg = compose_cfg("init=custom", "init._target_=userpkg.rules:ones", "+init.value=0.01",
                      "optimizer=custom", "optimizer._target_=userpkg.rules:plain_sgd", "optimizer.lr=0.2",
                      "schedule=custom", "schedule._target_=userpkg.rules:halve", "+schedule.every=2",
                      "schedule.interval=epoch", "trainer.epochs=4")
    parts = build(cfg)
    assert all(bool((p == 0.01).all()) for p in parts.model.parameters())
    assert type(parts.optimizer) is torch.optim.SGD
    assert [float(r["lr"]) for r in rows(train(cfg).run_dir)] == [0.2, 0.2, 0.1, 0.1]
    assert why_solo(cfg).startswith("init._target_=userpkg.rules:ones")


@pytest.mark.parametrize("target, message", [
    ("nosuchpkg.nets:build", ("model._target_=nosuchpkg.nets:build: cannot import nosuchpkg.nets "
                              "(ModuleNotFoundError: No module named 'nosuchpkg')")),
    ("userpkg.nets:missing", "model._target_=userpkg.nets:missing: module userpkg.nets has no attribute missing"),
    ("userpkg.nets:no_shape", ("model._target_=userpkg.nets:no_shape: no_shape(cfg, out_dim) does not take "
                               "(cfg, input_shape, out_dim)")),
    ("userpkg.nets.not_a_module", "model._target_=userpkg.nets.not_a_module: returned str, not a torch.nn.Module"),
])
def test_a_bad_target_exits_2_with_one_line(user_package, optlab, target, message):
    done = optlab("train", "model=custom", f"model._target_={target}", "+model.width=4", "trainer.epochs=1",
                  "trainer.progress=false")
    assert done.returncode == 2
    assert done.stderr.strip() == f"optlab: error: {message}"


def test_a_custom_option_without_its_target_exits_2_saying_how_to_name_it(optlab):
    done = optlab("train", "schedule=custom", "trainer.epochs=1")
    assert done.returncode == 2
    assert done.stderr.strip() == ("optlab: error: schedule._target_: missing; name your function as "
                                   "schedule._target_=module:function, taking (cfg, lr0, t, total)")


def test_a_config_dir_yaml_with_a_target_is_an_option_optlab_list_shows(user_package, tmp_path, optlab):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "tanh_net.yaml").write_text(
        "# A one-hidden-layer tanh net\nname: custom\n_target_: userpkg.nets:build\nwidth: 5\n")
    listed = optlab("list", "model", "--config-dir", "conf", "--format", "csv")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if "tanh_net" in row)
    assert "A one-hidden-layer tanh net (userpkg.nets:build)" in line and "width=5" in line
    done = optlab("train", "--config-dir", "conf", "model=tanh_net", "trainer.epochs=1", "trainer.progress=false")
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_an_optlab_process_imports_the_builder_from_pythonpath(user_package, tmp_path, optlab_process):
    done = optlab_process("train", "model=custom", "model._target_=userpkg.nets:build", "+model.width=3",
                          "trainer.epochs=1", "trainer.progress=false", env={"PYTHONPATH": str(tmp_path / "lib")})
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / done.stdout.strip().splitlines()[-1]  # relative to the directory it ran in
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
