"""A run folder from elsewhere never runs its code: a pickle payload planted in checkpoint.pt,
best.pt or model.pt (an object whose __reduce__ calls os.system) is refused by every path
that reads those files (--resume, init.from, init.from_checkpoint=last, data.difficulty_from,
optlab eval) with one line and exit 3, and the payload never runs."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

SOURCE = ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "trainer.epochs=2", "trainer.progress=false"]


class Payload:
    """What a hostile file holds: unpickling it runs a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A completed run: config.yaml, metrics.csv, checkpoint.pt, best.pt and model.pt."""
    from optlab.config.compose import compose
    from optlab.training.api import train

    root = tmp_path_factory.mktemp("source")
    return train(compose([*SOURCE, f"trainer.out_dir={root}"])).run_dir


@pytest.fixture
def planted(trained, tmp_path):
    """plant(file) -> a copy of the run with the payload inside `file`, and the marker the
    payload would create."""
    def plant(name: str, remove: tuple[str, ...] = ()):
        run = tmp_path / "downloaded-run"
        shutil.copytree(trained, run)
        marker = tmp_path / "payload-ran"
        saved = torch.load(run / name, weights_only=False, map_location="cpu")  # the genuine file optlab wrote
        saved["note"] = Payload(marker)
        torch.save(saved, run / name)
        for gone in remove:
            (run / gone).unlink()
        return run, marker

    return plant


def refused(result, run, name, marker) -> None:
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optlab: error:"), result.stderr
    assert f"{run / name}: refused" in lines[0] and "system" in lines[0], lines[0]
    assert not marker.exists(), "the planted code ran"


def test_resume_refuses_a_checkpoint_with_a_payload(optlab, planted):
    run, marker = planted("checkpoint.pt")
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    refused(optlab("train", "--resume", str(run)), run, "checkpoint.pt", marker)


@pytest.mark.parametrize("which, name", [("best", "best.pt"), ("last", "checkpoint.pt")])
def test_init_from_refuses_a_payload(optlab, planted, tmp_path, which, name):
    run, marker = planted(name)
    result = optlab("train", *SOURCE, f"init.from={run}", f"init.from_checkpoint={which}",
                    f"trainer.out_dir={tmp_path / 'out'}")
    refused(result, run, name, marker)


@pytest.mark.parametrize("name, remove", [("model.pt", ()), ("best.pt", ("model.pt",)),
                                          ("checkpoint.pt", ("model.pt", "best.pt"))])
def test_difficulty_from_refuses_a_payload(optlab, planted, tmp_path, name, remove):
    run, marker = planted(name, remove)
    result = optlab("train", *SOURCE, "data.order=curriculum", f"data.difficulty_from={run}",
                    f"trainer.out_dir={tmp_path / 'out'}")
    refused(result, run, name, marker)


def test_eval_refuses_a_model_file_with_a_payload(optlab, planted):
    run, marker = planted("model.pt")
    refused(optlab("eval", str(run), "--split", "val"), run, "model.pt", marker)


def test_the_files_optlab_writes_load_without_the_full_unpickler(trained):
    """Every .pt file of a run, the checkpoint's numpy RNG state included, reads back."""
    from optlab.runs.folder import load_checkpoint, load_model_file

    checkpoint = load_checkpoint(trained / "checkpoint.pt")
    assert checkpoint["rng"]["numpy"]["state"]["key"].dtype.name == "uint32"
    assert set(load_model_file(trained / "best.pt")) >= {"state_dict", "epoch"}
    assert "state_dict" in load_model_file(trained / "model.pt")
