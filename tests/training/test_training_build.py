"""Building a run's parts: plans checked first, channels_last and compile, training batches alone augmented."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import optlab.training.build as loop
from optlab.errors import ConfigError
from optlab.training.build import prepare_model
from optlab.training.api import train


@pytest.mark.parametrize("overrides", [("schedule=multistep", "schedule.milestones=[1.5,3]"),
                                       ("batch=increasing", "batch.milestones=[a]")])
def test_bad_milestones_fail_before_a_run_folder_exists(compose_cfg, tmp_path, overrides):
    from optlab.errors import ConfigError

    with pytest.raises(ConfigError, match="milestones"):
        train(compose_cfg(*overrides))
    assert not (tmp_path / "outputs" / "runs").exists() or not any((tmp_path / "outputs" / "runs").iterdir())


SHAPES = ["data=shapes", "data.n_samples=200", "model=cnn", "model.channels=4", "model.depth=2"]


def test_channels_last_run_matches_the_default_layout(compose_cfg, tmp_path):
    runs = [train(compose_cfg(*SHAPES, f"trainer.channels_last={flag}", "trainer.epochs=1"), run_root=tmp_path / flag)
            for flag in ("false", "true")]
    tables = [pd.read_csv(r.run_dir / "metrics.csv") for r in runs]
    for column in ("train_loss", "val_loss"):
        assert tables[0][column].iloc[0] == pytest.approx(tables[1][column].iloc[0], rel=1e-4)


def test_channels_last_needs_images(compose_cfg, tmp_path):
    with pytest.raises(ConfigError, match="channels_last"):
        train(compose_cfg("data=spirals", "trainer.channels_last=true"), run_root=tmp_path)


def test_prepare_model_converts_layout_and_compiles_in_place():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    keys = list(model.state_dict())
    prepared = prepare_model(model, {"channels_last": True, "compile": True})
    assert prepared is model and list(model.state_dict()) == keys  # checkpoints stay loadable
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model._compiled_call_impl is not None  # compiled lazily, on the first forward
    plain = prepare_model(torch.nn.Linear(2, 2), {"channels_last": False, "compile": False})
    assert plain._compiled_call_impl is None


def test_only_training_batches_are_augmented(monkeypatch, compose_cfg):
    seen = []
    real_build = loop.build_pipeline

    def counting_build(*args, **kwargs):
        pipeline = real_build(*args, **kwargs)

        def apply(x, y, g):
            seen.append(len(x))
            return pipeline(x, y, g)
        apply.active = pipeline.active
        return apply

    monkeypatch.setattr(loop, "build_pipeline", counting_build)
    result = train(compose_cfg("augment=noise", "trainer.epochs=1", "model=logistic"))
    from optlab.data.split import load_dataset
    n_train = len(load_dataset({"name": "digits"}, 0.2, seed=0).x_train)
    assert sum(seen) == n_train and result.status == "completed"
