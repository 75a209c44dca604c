"""Printing a config runs no user code: `optlab train --cfg` (and `-m ... --cfg`) with a
`_target_` naming a module in the working folder prints the config without importing it;
the module is imported, and its signature checked, when a run starts."""
from __future__ import annotations

import uuid

import pytest

TINY = ["data=digits", "trainer.epochs=1", "trainer.progress=false"]


@pytest.fixture
def user_module(tmp_path):
    """A module in the working folder whose import leaves a marker file; its name is fresh,
    so no earlier import in this process stands in for it."""
    name = f"mine_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').close()  # import-time code\n"
        "import math, torch\n"
        "def build(cfg, input_shape, out_dim):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(input_shape), out_dim))\n")
    return name, marker


@pytest.mark.parametrize("grid", [False, True])
def test_cfg_prints_the_config_without_importing_the_target(optlab, user_module, grid):
    name, marker = user_module
    args = ["train", *(["-m"] if grid else []), *TINY, "model=custom", f"model._target_={name}:build", "--cfg"]
    if grid:
        args.append("trainer.seed=0,1")
    result = optlab(*args)
    assert result.returncode == 0, result.stderr
    assert f"_target_: {name}:build" in result.stdout
    assert not marker.exists(), "printing the config imported the user's module"


def test_a_run_imports_the_target_before_its_run_folder_exists(optlab, tmp_path, user_module):
    name, marker = user_module
    wrong = optlab("train", *TINY, "model=custom", f"model._target_={name}:nothing", f"trainer.out_dir={tmp_path / 'o'}")
    assert wrong.returncode == 2 and f"module {name} has no attribute nothing" in wrong.stderr, wrong.stderr
    assert not (tmp_path / "o" / "runs").exists() or not any((tmp_path / "o" / "runs").iterdir())
    assert marker.exists()
