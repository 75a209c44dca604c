"""init.from: start from another run's weights (pre-training, then fine-tuning). Tensors whose
name and shape fit are copied; the rest (an output layer for another class count) keep the
configured init, and one line on stderr names them."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from optlab.errors import ConfigError
from optlab.runs.folder import load_checkpoint

CHECKPOINT_FILES = {"best": "best.pt", "last": "checkpoint.pt"}  # init.from_checkpoint -> the file
SHOWN = 6  # tensors named in the line; the rest counted


def source_state(run_dir: Path, which: str) -> dict[str, torch.Tensor]:
    """The state_dict saved in the run folder's best.pt or checkpoint.pt."""
    if not run_dir.is_dir():
        raise ConfigError(f"init.from={run_dir}: no such run folder")
    path = run_dir / CHECKPOINT_FILES[which]
    if not path.is_file():
        others = [f"{key} ({name})" for key, name in CHECKPOINT_FILES.items() if (run_dir / name).is_file()]
        raise ConfigError(f"init.from={run_dir}: it has no {path.name} (init.from_checkpoint={which}); "
                          f"it has: {', '.join(others) or 'no checkpoint'}")
    state = saved_weights(load_checkpoint(path))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"init.from={run_dir}: {path.name} holds no model weights")
    return state


def saved_weights(saved):
    """The model's state_dict in a loaded checkpoint.pt (`model`), best.pt or model.pt
    (`state_dict`), or a bare state_dict."""
    if not isinstance(saved, dict):
        return None
    return saved.get("model", saved.get("state_dict", saved))


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def load_from(model: nn.Module, init_cfg: dict) -> list[str]:
    """Copy init.from's fitting tensors into the model (already initialized by the configured
    init); the names of those that kept that init. Nothing fitting is a ConfigError."""
    source = init_cfg.get("from")
    if not source:
        return []
    which = str(init_cfg.get("from_checkpoint", "best"))
    state = source_state(Path(str(source)).expanduser(), which)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not any(name in fits for name, _ in model.named_parameters()):
        raise ConfigError(f"init.from={source}: none of its parameters fits this model (another model, width or "
                          f"depth?); its parameters: {', '.join(list(state)[:8])}")
    model.load_state_dict(fits, strict=False)
    kept = [k for k in own if k not in fits]
    detail = ", ".join(f"{k} ({_shape(own[k])}, source {_shape(state[k]) if k in state else 'none'})"
                       for k in kept[:SHOWN])
    detail += f" and {len(kept) - SHOWN} more" if len(kept) > SHOWN else ""
    print(f"optlab: init.from={source} ({CHECKPOINT_FILES[which]}): loaded {len(fits)} of {len(own)} tensors"
          + (f"; init={init_cfg['name']} kept for {detail}" if kept else ""), file=sys.stderr)
    return kept
