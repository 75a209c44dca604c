"""Everything a run trains with, built from its config: device, seed, data and its placement,
model, optimizer, loss, autocast and scaler, augmentation and batches."""
from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import torch

from runner.data._base import Dataset
from runner.data.loaders import DeviceBatches, StreamingBatches
from runner.errors import ConfigError
from runner.nn.init import InitContext, initialize
from runner.nn.models import build_model


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
    return model.to(device)


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
    if t.get("channels_last", False):
        model.to(memory_format=torch.channels_last)
    if t.get("compile", False):
        model.compile()
    return model


def make_autocast(device: torch.device, precision: str):
    if precision == "32":
        no_autocast = nullcontext()  # reusable: one object for every step
        return lambda: no_autocast
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)
