"""The `optlab` command itself: help, version, flags in any order, errors as one line and an exit code."""
import json

import pytest
from testkit import TINY


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_version_and_help(optlab):
    assert optlab("--version").stdout.startswith("optlab ")
    result = optlab("--help")
    assert result.returncode == 0 and "train" in result.stdout


@pytest.mark.slow
def test_train_writes_a_run_folder_and_prints_its_path_last(optlab_process, tmp_path):
    result = optlab_process("train", *TINY)
    assert result.returncode == 0, result.stderr
    run = tmp_path / last_line(result.stdout)
    assert run.is_dir() and run.parent == tmp_path / "outputs" / "runs"
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("override, fragment", [
    ("optimizer=adamm", "choose from: "),
    ("optimizer.lrr=1", "optimizer.lrr"),
    ("optimizer.lr=abc", "optimizer.lr=abc"),
    ("optimizer.lr=0", "optimizer.lr=0"),
    ("batch.size=0", "batch.size=0"),
    ("trainer.val_fraction=2", "trainer.val_fraction=2"),
    ("trainer.epochs=-1", "trainer.epochs=-1"),
])
def test_bad_input_exits_2_with_one_line(optlab, override, fragment):
    result = optlab("train", override)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_debug_flag_shows_the_traceback(optlab):
    result = optlab("train", "optimizer=adamm", env={"OPTLAB_DEBUG": "1"})
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_flags_and_overrides_mix_in_any_order(optlab):
    result = optlab("train", "model=cnn", "--cfg", "optimizer=adam")
    assert result.returncode == 0, result.stderr
    assert "name: cnn" in result.stdout and "name: adam" in result.stdout


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("args", [
    ["train", "trainer.out_dir=/proc/x", "trainer.epochs=1"],
    ["sweep", "sweeps/lr_wd.yaml", "--trials", "1", "trainer.out_dir=/proc/x"],
    ["report", "runs", "--out", "/proc/x"],
])
def test_an_output_folder_the_machine_cannot_make_exits_5_in_one_line(optlab, tmp_path, args):
    from testkit import config, write_run

    write_run(tmp_path / "runs", "a", config(), [0.5])
    result = optlab(*args)
    assert result.returncode == 5, result.stderr
    assert result.stderr.strip() == "optlab: error: /proc/x: a folder cannot be made there"


@pytest.mark.parametrize("args, expected", [
    (["trian"], "trian: unknown command; did you mean train? choose from: train, eval, sweep, rerun, report, "
                "lr-find, list, study (see `optlab --help`)"),
    (["train", "optimzer=adam"], "optimzer: unknown config group 'optimzer'; did you mean optimizer? choose from: "),
    (["train", "optimizer=adma"], "optimizer=adma: unknown optimizer; did you mean adam? choose from: adadelta, "),
    (["train", "optimizer.lrr=0.1"], "optimizer.lrr: unknown key, not a key of optimizer=sgd; did you mean "
                                     "optimizer.lr? the keys of optimizer=sgd: lr, "),
    (["study", "rn"], "rn: unknown command; did you mean run? choose from: list, run, table"),
    (["report", "runs", "--outt", "r"], "--outt: unknown flag of optlab report; did you mean --out? choose from: "),
    (["report", "runs", "--format", "jsn"], "--format jsn: did you mean json? choose from: table, csv, md, json"),
])
def test_a_typo_gets_the_closest_choice_in_one_line(optlab, args, expected):
    result = optlab(*args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"optlab: error: {expected}"), result.stderr
    assert "optlab: error: optlab" not in result.stderr


def _commands(parser, prefix=("optlab",)):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


def test_every_command_has_a_description_and_examples():
    from optlab.cli.app import build_parser

    commands = dict(_commands(build_parser()))
    assert {" ".join(c) for c in commands} >= {"optlab train", "optlab study list", "optlab study table"}
    for command, parser in commands.items():
        text = parser.format_help()
        examples = [line for line in text.split("examples:\n", 1)[-1].splitlines() if line.strip()]
        assert parser.description and "examples:\n" in text and 2 <= len(examples) <= 3, " ".join(command)
        assert all(line.strip().startswith(" ".join(command[:2])) for line in examples), text
    assert "`optlab list`" in commands["optlab", "train"].format_help()
