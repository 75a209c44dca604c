"""OPTLAB_FAULT itself: read on first use, so a value that does not parse never breaks an
import or `--help`; a command refuses it with one line (exit 2) that lists the known points;
every point the code passes through is one of them."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from faultkit import one_error_line, optlab

from optlab import faults

RUNNER = Path(__file__).resolve().parents[2] / "runner"


@pytest.fixture
def fault_env(monkeypatch):
    """Set OPTLAB_FAULT for this process, read afresh."""
    def arm(value: str):
        monkeypatch.setenv("OPTLAB_FAULT", value)
        monkeypatch.setattr(faults, "_plan", None)
        monkeypatch.setattr(faults, "_hits", {})

    return arm


@pytest.mark.parametrize("value, words", [
    ("garbage", ["unknown point 'garbage'", "train.step", "sweep.before_ask"]),
    ("sweep.after_ask=kill", ["unknown point 'sweep.after_ask'", "did you mean sweep.before_ask"]),
    ("train.step=kil", ["unknown action 'kil'", "did you mean kill"]),
    ("train.step@x=kill", ["@x", "whole number"]),
    ("train.step@0=kill", ["@0", "whole number"]),
])
def test_a_bad_plan_is_refused_by_a_command_in_one_line(fault_env, capsys, value, words):
    from optlab.cli import main

    fault_env(value)
    assert main(["list", "init"]) == 2
    one_error_line(capsys.readouterr().err, "OPTLAB_FAULT", *words)


def test_a_good_plan_arms_its_point(fault_env):
    fault_env("train.epoch_end@2=enospc")
    faults.hit("train.epoch_end")
    with pytest.raises(OSError, match="No space left"):
        faults.hit("train.epoch_end")


@pytest.mark.slow
def test_help_and_a_command_with_a_bad_plan_in_a_real_process(tmp_path):
    shown = optlab("--help", cwd=tmp_path, fault="garbage")
    assert shown.returncode == 0 and "usage: optlab" in shown.stdout and shown.stderr == "", shown.stderr
    refused = optlab("list", "init", cwd=tmp_path, fault="garbage")
    assert refused.returncode == 2
    one_error_line(refused.stderr, "OPTLAB_FAULT", "unknown point 'garbage'")


def named_points() -> set[str]:
    """The string literals the code hands to faults.hit() or as a fault_point."""
    names = set()
    for path in RUNNER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "hit" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
            for keyword in node.keywords:
                if keyword.arg == "fault_point" and isinstance(keyword.value, ast.Constant):
                    names.add(keyword.value.value)
    return names


def test_every_point_the_code_passes_is_a_known_one():
    named = named_points()
    assert named and named <= set(faults.POINTS), named - set(faults.POINTS)
