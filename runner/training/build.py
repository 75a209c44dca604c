"""Everything a run trains with, built from its config: device, seed, data and its placement,
model, optimizer, loss, autocast and scaler, augmentation and batches, and the checks that
need them (a bad lr plan fails here, before a run folder exists). train, lr-find and the
benchmarks all start from build(cfg)."""
from __future__ import annotations

import json
import random
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from optlab.config.compose import as_plain
from optlab.data._base import Dataset
from optlab.data.augment import build_pipeline
from optlab.data.loaders import DeviceBatches, StreamingBatches, keep_data_on_device
from optlab.data.split import load_dataset
from optlab.errors import ConfigError
from optlab.nn.init import InitContext, initialize
from optlab.nn.layers import set_noise_generator
from optlab.nn.models import build_model
from optlab.optim import batching, schedules
from optlab.optim.optimizers import build_optimizer, is_full_batch, needs_closure
from optlab.optim.regularize import loss_fn
from optlab.optim.second_order import BatchObjective, check_pure_forward
from optlab.training import difficulty, tensorboard
from optlab.training.threads import use_threads
from optlab.training.trainable import freeze, param_groups
from optlab.training.transfer import load_from


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.device={name}: CUDA is not available here; choose from: auto, cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"trainer.device={name}: only {torch.cuda.device_count()} GPU(s) visible")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def build_network(c: dict, data: Dataset, device: torch.device) -> torch.nn.Module:
    model = build_model(c, data.input_shape, data.output_dim)
    batch = data.x_train[: min(len(data.x_train), 512)].cpu()
    initialize(model, c["init"], c["activation"],
               InitContext(x_batch=batch, y_train=data.y_train.cpu(), num_classes=data.num_classes))
    load_from(model, c["init"])  # init.from: another run's weights where they fit
    return model.to(device)


def trainable_groups(model: torch.nn.Module, c: dict) -> list:
    """trainer.freeze and trainer.train_only turn gradients off; optimizer.lr_scale groups the rest."""
    freeze(model, c)
    return param_groups(model, c["optimizer"].get("lr_scale") or {})


def noise_generators(model: torch.nn.Module, device: torch.device, seed: int) -> dict[str, torch.Generator]:
    """norm.noise=true: the generator the noisy norm layers draw from (saved and restored with
    the others), else none."""
    generator = make_generator(device, seed)
    return {"norm_noise": generator} if set_noise_generator(model, generator) else {}


def place_data(data: Dataset, device: torch.device, on_device: bool, channels_last: bool) -> Dataset:
    """Images in channels_last when asked; everything on the training device, or left in
    host memory for StreamingBatches when the data does not fit there."""
    if channels_last:
        if len(data.input_shape) != 3:
            raise ConfigError(f"trainer.channels_last=true needs images (C, H, W); this data has shape {data.input_shape}")
        fmt = torch.channels_last
        data = replace(data, x_train=data.x_train.contiguous(memory_format=fmt),
                       x_val=data.x_val.contiguous(memory_format=fmt))
    return data.to(device) if on_device else data


def make_batches(data: Dataset, device: torch.device, on_device: bool, seed: int) -> DeviceBatches | StreamingBatches:
    """The training split's loader: index slices of on-device data, or host batches streamed
    to the device; either way its generator (restored on resume) lives on the device."""
    generator = make_generator(device, seed)
    if on_device:
        return DeviceBatches(data.x_train, data.y_train, generator)
    return StreamingBatches(data.x_train, data.y_train, generator, device)


def prepare_model(model: torch.nn.Module, t: dict) -> torch.nn.Module:
    """trainer.channels_last and trainer.compile, in place: state_dict keys stay the same."""
    if t["channels_last"]:
        model.to(memory_format=torch.channels_last)
    if str(t["compile"]).lower() == "true":  # auto: a solo run is not compiled (populations decide in training.stacked)
        model.compile()
    return model


def make_autocast(device: torch.device, precision: str):
    if precision == "32":
        no_autocast = nullcontext()  # reusable: one object for every step
        return lambda: no_autocast
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class Parts:
    """One run's components, built in the order config -> data -> model -> optimizer ->
    schedule and batch plan, with the seed set first so that every random draw is the run's."""

    cfg: dict  # the plain, resolved config
    device: torch.device
    seed: int
    data: Dataset
    batches: DeviceBatches | StreamingBatches
    model: torch.nn.Module
    params: list[torch.nn.Parameter]  # the ones that train
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    take_step: Callable[[], object]
    autocast: Callable
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    augment: Callable
    generators: dict[str, torch.Generator]  # data order, augmentation (restored on resume)
    lr0: float  # optimizer.lr times the batch plan's lr scale
    epochs: int
    full_batch: bool
    # L-BFGS, Newton: the closure their step re-evaluates, for a batch (None: step() alone)
    objective: Callable[[torch.Tensor, torch.Tensor], BatchObjective] | None = None

    def batch_size(self, epoch: int) -> int:
        n = self.batches.size(epoch)  # the epoch's pool under a curriculum's pacing, else the training split
        return n if self.full_batch else batching.batch_size_at(self.cfg["batch"], epoch, n)


def build(cfg, datasets: dict | None = None) -> Parts:
    """The run's parts. `datasets`: a cache of loaded datasets by (data options, split, seed),
    for many runs built in one process (a population); a load draws from no global RNG, so
    a cached one leaves every later draw as it would have been."""
    c = as_plain(cfg)
    t = c["trainer"]
    device, seed = resolve_device(str(t["device"])), int(t["seed"])
    use_threads(t.get("threads", "auto"))  # a run made before trainer.threads existed: auto
    tensorboard.require(t)
    seed_everything(seed)
    data = cached_dataset(c["data"], (float(t["val_fraction"]), float(t.get("test_fraction", 0.0))), seed, datasets)
    on_device = keep_data_on_device(t["data_on_device"], data, device)
    data = place_data(data, device, on_device, bool(t["channels_last"]))
    model = prepare_model(build_network(c, data, device), t)
    optimizer = build_optimizer(trainable_groups(model, c), c["optimizer"])
    augment = build_pipeline(c["augment"], data.num_classes)
    scaler = torch.amp.GradScaler(device.type, enabled=str(t["precision"]) == "16" and device.type == "cuda")
    take_step = (lambda: (scaler.step(optimizer), scaler.update())) if scaler.is_enabled() else optimizer.step
    batches = make_batches(data, device, on_device, seed + 1)
    batches.pacing = difficulty.pacing(c, data, model)  # data.order: None for random
    parts = Parts(c, device, seed, data, batches, model, [p for p in model.parameters() if p.requires_grad],
                  optimizer, scaler, take_step, make_autocast(device, str(t["precision"])), loss_fn(data.task, c),
                  augment, {"data": batches.generator, "augment": make_generator(device, seed + 2),
                            **noise_generators(model, device, seed + 3)},
                  float(c["optimizer"]["lr"]) * batching.lr_scale(c["batch"]), int(t["epochs"]),
                  is_full_batch(c["optimizer"]))
    if needs_closure(c["optimizer"]):
        parts.objective = closure_for(parts)
    check_plan(parts)
    return parts


def closure_for(parts: Parts) -> Callable[[torch.Tensor, torch.Tensor], BatchObjective]:
    """The objective a closure optimizer's step re-evaluates (what the step loop computes:
    loss plus penalties), after the settings it cannot honour exit 2."""
    c, name = parts.cfg, parts.cfg["optimizer"]["name"]
    reg = c["regularize"]
    if str(c["trainer"]["precision"]) != "32":
        raise ConfigError(f"optimizer={name} re-evaluates the loss in its step; use trainer.precision=32")
    if reg.get("clip_norm") or reg.get("clip_value"):
        raise ConfigError(f"optimizer={name} computes its own gradients in its step; "
                          "regularize.clip_norm and clip_value do not apply (leave them null)")
    if name == "newton":
        check_pure_forward(parts.model)
    return lambda x, y: BatchObjective(parts.model, parts.params, parts.loss, reg, x, y)


def cached_dataset(data_cfg: dict, fractions: tuple[float, float], seed: int, cache: dict | None) -> Dataset:
    """The dataset split by (val_fraction, test_fraction) and the seed, loaded once per cache."""
    val_fraction, test_fraction = fractions
    if cache is None:
        return load_dataset(data_cfg, val_fraction, seed, test_fraction=test_fraction)
    key = (json.dumps(data_cfg, sort_keys=True, default=str), val_fraction, test_fraction, seed)
    if key not in cache:
        cache[key] = load_dataset(data_cfg, val_fraction, seed, test_fraction=test_fraction)
    return cache[key]


def check_plan(parts: Parts) -> None:
    """Settings read only once training is under way (milestones, a batch plan with a
    full-batch optimizer) fail now, as a ConfigError naming the key."""
    c = parts.cfg
    if parts.full_batch and c["batch"]["name"] != "fixed":
        raise ConfigError(f"optimizer={c['optimizer']['name']} steps on the whole training split; "
                          f"batch={c['batch']['name']} does not apply (leave batch=fixed)")
    schedules.check(c["schedule"], parts.lr0, parts.epochs)
    parts.batch_size(0)
