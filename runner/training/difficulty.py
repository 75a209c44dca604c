"""How hard each training example is, for a curriculum (data/curriculum.py): its loss under a
reference model, the model of the run folder `data.difficulty_from` or, when that is null,
this run's own freshly initialized model.

The loss is the data's plain loss per example (cross-entropy, or the squared error averaged
over the outputs for regression; no label smoothing, no penalties), in float32 and eval mode
(no dropout, batch norm with its running statistics), so it draws from no RNG and leaves the
model as it was. A reference run's model sees the inputs standardized as it was trained
(its own training statistics). The scores are written to the run folder's difficulty.csv
when a run starts and read back from it on a resume, so a resumed run ranks the examples
exactly as it did, even when the reference run has changed since.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from optlab.config.compose import as_plain, load_run_config
from optlab.data._base import Dataset
from optlab.data.curriculum import Pacing, is_paced, pacing_for
from optlab.errors import ConfigError, DataError
from optlab.nn.models import build_model
from optlab.runs.files import read_rows, write_atomic
from optlab.runs.folder import load_checkpoint, load_model_file
from optlab.training.export import run_dataset
from optlab.training.transfer import saved_weights

SCORES_FILE = "difficulty.csv"
WEIGHT_FILES = ("model.pt", "best.pt", "checkpoint.pt")  # the first one present is the run's model


@torch.no_grad()
def example_losses(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str,
                   batch_size: int = 1024) -> torch.Tensor:
    """Each example's loss under `model` (eval mode, then back to its mode), on the CPU, in
    the order of x."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        out = model(xb).float()
        if task == "classification":
            losses.append(F.cross_entropy(out, yb, reduction="none"))
        else:
            out = out.squeeze(-1) if yb.dim() == 1 else out
            err = (out - yb) ** 2
            losses.append(err if err.dim() == 1 else err.flatten(1).mean(dim=1))
    model.train(was_training)
    return torch.cat(losses).cpu()


def difficulty(c: dict, data: Dataset, model: torch.nn.Module) -> torch.Tensor:
    """The training examples' scores: under the reference run's model, or under `model`
    (this run's, just initialized)."""
    source = c["data"].get("difficulty_from")
    if source is None:
        return example_losses(model, data.x_train, data.y_train, data.task)
    reference, x = reference_model(Path(str(source)).expanduser(), data, next(model.parameters()).device)
    return example_losses(reference, x, data.y_train, data.task)


def pacing(c: dict, data: Dataset, model: torch.nn.Module) -> Pacing | None:
    """The run's pacing (None for data.order=random)."""
    return pacing_for(c["data"], difficulty(c, data, model)) if is_paced(c["data"]) else None


def reference_model(run_dir: Path, data: Dataset, device: torch.device) -> tuple[torch.nn.Module, torch.Tensor]:
    """The reference run's model with its weights, and this run's training inputs as that
    model expects them (standardized with the reference run's statistics)."""
    where = f"data.difficulty_from={run_dir}"
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{where}: not a run folder (no config.yaml)")
    ref = as_plain(load_run_config(run_dir))
    weights_path = next((run_dir / f for f in WEIGHT_FILES if (run_dir / f).is_file()), None)
    if weights_path is None:
        raise ConfigError(f"{where}: the run has no weights yet (none of {', '.join(WEIGHT_FILES)})")
    saved = (load_checkpoint if weights_path.name == "checkpoint.pt" else load_model_file)(weights_path)
    model = build_model(ref, data.input_shape, data.output_dim)
    try:
        model.load_state_dict(saved_weights(saved))
    except RuntimeError as exc:
        raise ConfigError(f"{where}: its model does not take this data (inputs {data.input_shape}, "
                          f"{data.output_dim} outputs): {' '.join(str(exc).split())[:200]}") from None
    mean, std = _reference_stats(saved, ref, data)
    x = data.x_train if mean is None else (data.x_train.cpu() * data.std.cpu() + data.mean.cpu() - mean) / std
    return model.to(device), x


def _reference_stats(saved: dict, ref: dict, data: Dataset) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The reference run's standardization (None, None when it is this run's own)."""
    if isinstance(saved.get("mean"), torch.Tensor) and isinstance(saved.get("std"), torch.Tensor):
        mean, std = saved["mean"], saved["std"]
    else:
        ref_data = run_dataset(ref)
        mean, std = ref_data.mean, ref_data.std
    if torch.equal(mean.cpu(), data.mean.cpu()) and torch.equal(std.cpu(), data.std.cpu()):
        return None, None
    return mean.cpu(), std.cpu()


def keep_scores(batches, run_dir: Path, cfg: dict, fresh: bool) -> None:
    """A new run writes its scores to the run folder; a resumed one ranks by the scores it
    wrote (a run folder from before they were written keeps the ones just computed)."""
    if batches.pacing is None:
        return
    saved = None if fresh else read_scores(run_dir)
    if saved is None:
        write_scores(run_dir, batches.pacing.scores)
        return
    if len(saved) != len(batches):
        raise DataError(f"{run_dir / SCORES_FILE}: {len(saved)} scores for a training split of {len(batches)} examples")
    batches.pacing = pacing_for(cfg["data"], saved)


def write_scores(run_dir: Path, scores: torch.Tensor) -> None:
    """difficulty.csv: each training example's index in the training split and its score."""
    lines = ["index,loss"] + [f"{i},{float(v)!r}" for i, v in enumerate(scores.tolist())]
    write_atomic(run_dir / SCORES_FILE, "\n".join(lines) + "\n")


def read_scores(run_dir: Path) -> torch.Tensor | None:
    path = run_dir / SCORES_FILE
    if not path.is_file():
        return None
    try:
        return torch.tensor([float(r["loss"]) for r in read_rows(path)], dtype=torch.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: damaged ({type(exc).__name__}: {exc})") from None
