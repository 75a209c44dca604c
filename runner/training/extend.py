"""`optlab train --resume RUN trainer.epochs=M`: a finished run continued to M epochs.

Only where the lr schedule does not depend on the run's length, so that the epochs already
trained are exactly those of an M-epoch run: the continued run then equals one trained for M
epochs from the start (its rows, on CPU, bitwise).
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from optlab.config.compose import to_yaml
from optlab.errors import ConfigError
from optlab.optim.schedules import SCHEDULES
from optlab.runs import lease
from optlab.runs.files import write_atomic
from optlab.runs.folder import write_summary
from optlab.runs.status import Status

EXTENDABLE_STATUSES = (Status.COMPLETED, Status.INTERRUPTED)


def requested_epochs(overrides: list[str]) -> int:
    """M from --resume's trainer.epochs=M (given once, a whole number); else exits 2."""
    key, _, value = overrides[0].partition("=") if len(overrides) == 1 else ("", "", "")
    if key.lstrip("+") != "trainer.epochs" or not value.strip().isdigit():
        raise ConfigError(f"{' '.join(overrides)}: --resume extends a run with one trainer.epochs=M, M a whole "
                          f"number of epochs")
    return int(value)


def extend_run(run_dir: Path, cfg: DictConfig, previous: dict, epochs: int) -> DictConfig:
    """The run's config with trainer.epochs=epochs, written to its config.yaml; its summary
    notes the epochs done when it was extended (early stopping counts afresh from there).
    An early-stopped run may be extended to fewer epochs than it was configured for."""
    old, schedule = int(cfg.trainer.epochs), str(cfg.schedule.name)
    done, status = int(previous.get("epochs_done") or old), previous.get("status")
    if status not in EXTENDABLE_STATUSES:
        raise ConfigError(f"--resume {run_dir} trainer.epochs={epochs}: the run is {status}; "
                          f"only a completed (or interrupted) run can be extended")
    if epochs <= done or (epochs <= old and previous.get("reason") != "early_stopped"):
        raise ConfigError(f"trainer.epochs={epochs}: {run_dir} already trained {done} of its {old} epochs; "
                          f"extend it to more")
    extendable = [spec.name for spec in SCHEDULES if spec.extendable]
    if schedule not in extendable:
        raise ConfigError(f"trainer.epochs={epochs} on --resume: schedule={schedule} depends on the run's length, "
                          f"so its first {old} epochs would not be those of a {epochs}-epoch run; runs can be "
                          f"extended with: {', '.join(extendable)}")
    cfg.trainer.epochs = epochs
    lease.claim(Path(run_dir))  # before its files change: no other process may be training it
    write_atomic(Path(run_dir) / "config.yaml", to_yaml(cfg))
    write_summary(Path(run_dir) / "summary.json",
                  {**previous, "epochs": epochs, "extended_from": [*previous.get("extended_from", []), done]},
                  ends_run=False)
    return cfg
