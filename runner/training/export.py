"""model.pt, the run's model for use outside optlab, and the data `optlab eval` measures it on.

model.pt holds plain containers and tensors only, so `torch.load(path, weights_only=True)`
reads it: `state_dict` (the best validation epoch's weights), `config` (the run's resolved
config; its `model`, `norm` and `activation` describe the network), `input_shape`, `mean` and
`std` (the input standardization, from the training split), `num_classes`, `output_dim`,
`task`, and `best_epoch`, `best_metric`, `best_value`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from optlab.data._base import DATASETS, Dataset
from optlab.data.split import load_dataset
from optlab.data.subset import keep_classes
from optlab.errors import ConfigError, DataError
from optlab.nn.models import build_model
from optlab.runs.folder import load_model_file, save_torch_file
from optlab.training.best import BestWeights

MODEL_FILE = "model.pt"
SPLITS = ("val", "test")
MODEL_KEYS = ("state_dict", "config", "input_shape", "mean", "std", "num_classes", "output_dim", "task")  # what eval reads


def write_model_file(run_dir: Path, parts, weights: dict, best: BestWeights) -> None:
    data = parts.data
    save_torch_file(Path(run_dir) / MODEL_FILE, {
        "state_dict": weights, "config": parts.cfg, "input_shape": list(data.input_shape),
        "mean": data.mean.detach().cpu().clone(), "std": data.std.detach().cpu().clone(),
        "num_classes": data.num_classes, "output_dim": data.output_dim, "task": data.task,
        "best_epoch": best.epoch, "best_metric": best.metric, "best_value": best.value})


def read_model_file(run_dir: Path) -> dict:
    """model.pt; one without MODEL_KEYS (not written by optlab) is a DataError."""
    saved = load_model_file(Path(run_dir) / MODEL_FILE)
    missing = [key for key in MODEL_KEYS if key not in saved] if isinstance(saved, dict) else list(MODEL_KEYS)
    if missing:
        raise not_rebuildable(run_dir, f"no {', '.join(missing)}")
    return saved


def not_rebuildable(run_dir: Path, detail: str) -> DataError:
    return DataError(f"{run_dir}/{MODEL_FILE}: does not hold a model optlab can rebuild ({detail})")


def rebuild_model(run_dir: Path, saved: dict, device: torch.device) -> torch.nn.Module:
    """model.pt's network with its weights, in eval mode on `device`."""
    try:
        model = build_model(saved["config"], tuple(saved["input_shape"]), int(saved["output_dim"]))
        model.load_state_dict(saved["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise not_rebuildable(run_dir, " ".join(str(exc).split())[:200]) from None
    return model.to(device).eval()


def run_dataset(c: dict) -> Dataset:
    """A run's dataset drawn again from its config: the data, the seed and the split fractions."""
    t = c["trainer"]
    return load_dataset(c["data"], float(t["val_fraction"]), int(t["seed"]), test_fraction=float(t.get("test_fraction", 0.0)))


def split_data(run_dir: Path, saved: dict, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's validation or test split, drawn again from its data, seed and fractions."""
    c = saved["config"]
    data = run_dataset(c)
    if split == "val":
        return data.x_val, data.y_val
    if not data.has_test:
        raise ConfigError(f"--split test: {run_dir} has no test split (data={c['data']['name']} has no test files "
                          f"and trainer.test_fraction=0); use --split val or --data")
    return data.x_test, data.y_test


def other_data(data_cfg: dict, saved: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample of another dataset (its test files too, when it has them; data.keep_classes'
    only, as training loads them), standardized with the run's training statistics; its inputs
    must have the run's shape."""
    pool = keep_classes(DATASETS.get(data_cfg["name"]).load(data_cfg, seed), data_cfg)
    x, y = pool.x, pool.y
    if pool.x_test is not None:
        x, y = torch.cat([x, pool.x_test]), torch.cat([y, pool.y_test])
    shape = list(x.shape[1:])
    if shape != list(saved["input_shape"]):
        raise ConfigError(f"--data data={data_cfg['name']}: inputs of shape {shape}; the run's model takes "
                          f"{list(saved['input_shape'])}")
    if pool.task != saved["task"]:
        raise ConfigError(f"--data data={data_cfg['name']}: a {pool.task} task; the run's model is for {saved['task']}")
    if pool.task == "classification" and int(y.max()) >= int(saved["num_classes"]):
        raise DataError(f"--data data={data_cfg['name']}: label {int(y.max())}, but the run's model has "
                        f"{saved['num_classes']} classes")
    return (x - saved["mean"]) / saved["std"], y


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"--split {split}: choose from: {', '.join(SPLITS)}")
    return split
