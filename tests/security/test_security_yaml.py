"""YAML optlab did not write is read within bounds: an alias bomb (a few hundred bytes that
expand to a billion nodes) or 100,000 nested `[` in a sweep file, a study file, a
--config-dir option or a run folder's config.yaml is refused at once: one line and exit 2
for inputs, exit 3 for a run folder resumed, skipped with the reason by a report."""
from __future__ import annotations

import json
import shutil
import time

import pytest

from optlab import safe_yaml
from testkit import one_line

TINY = ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "trainer.epochs=1", "trainer.progress=false"]


def alias_bomb(levels: int = 9) -> str:
    """A flow list whose last anchor expands to 10**levels scalars (about 300 bytes)."""
    parts = ["&l0 [x, x, x, x, x, x, x, x, x, x]"]
    parts += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text, why", [(f"a: {alias_bomb()}", "aliases are expanded"),
                                       (DEEP, "nest"), (f"a: &x [[[[1]]]]\nb: {'[' * 62}*x{']' * 62}", "deeper")],
                         ids=["alias_bomb", "deep", "deep_through_an_alias"])
def test_a_text_past_a_bound_is_refused_before_anything_builds_it(text, why):
    started = time.perf_counter()
    with pytest.raises(Exception, match=why):
        safe_yaml.check(text)
    assert time.perf_counter() - started < 2


def test_a_large_legitimate_file_is_read():
    text = "space:\n  optimizer.lr: [" + ", ".join(str(i) for i in range(100_000)) + "]\n"
    assert len(safe_yaml.load_text(text, "big.yaml")["space"]["optimizer.lr"]) == 100_000


@pytest.mark.parametrize("key", ["study", "base", "metric", "when", "deep"])
def test_a_sweep_file_past_a_bound_exits_2(optlab, tmp_path, key):
    body = {"metric": "val_acc", "sampler": "random", "trials": 1, "base": TINY,
            "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.1}}}
    text = json.dumps(body)[:-1]  # JSON is YAML: the hostile key goes last, written by hand
    text += {"study": f', "study": {alias_bomb()}}}', "base": f', "base": {alias_bomb()}}}',
             "metric": f', "metric": {alias_bomb()}}}', "deep": f', "study": {DEEP}}}',
             "when": f', "space": {{"optimizer.lr": {{"type": "float", "low": 0.01, "high": 0.1, '
                     f'"when": {{"optimizer": {alias_bomb()}}}}}}}}}'}[key]
    (tmp_path / "hostile.yaml").write_text(text)
    one_line(optlab("sweep", str(tmp_path / "hostile.yaml")), 2, "hostile.yaml")


@pytest.mark.parametrize("command", [["list", "model"], ["train", "--cfg"]])
@pytest.mark.parametrize("hostile", [alias_bomb(), DEEP])
def test_a_config_dir_option_past_a_bound_exits_2(optlab, tmp_path, command, hostile):
    (tmp_path / "mine" / "model").mkdir(parents=True)
    (tmp_path / "mine" / "model" / "boom.yaml").write_text(f"name: mlp\nextra: {hostile}\n")
    one_line(optlab(*command, "--config-dir", str(tmp_path / "mine")), 2, "boom.yaml")


def test_a_study_file_past_a_bound_exits_2(optlab, tmp_path):
    (tmp_path / "boom.yaml").write_text(f"claim: {alias_bomb()}\n")
    one_line(optlab("study", "run", str(tmp_path / "boom.yaml")), 2, "boom.yaml", "refused")


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    from optlab.config.compose import compose
    from optlab.training.api import train

    root = tmp_path_factory.mktemp("good")
    return train(compose([*TINY, f"trainer.out_dir={root}"])).run_dir


@pytest.mark.parametrize("hostile", [f"model: {alias_bomb()}\n", DEEP])
def test_a_run_folder_whose_config_is_past_a_bound(optlab, tmp_path, good_run, hostile):
    parent = tmp_path / "runs"
    shutil.copytree(good_run, parent / "good")
    bad = shutil.copytree(good_run, parent / "bad")
    (bad / "config.yaml").write_text(hostile)
    summary = json.loads((bad / "summary.json").read_text())
    (bad / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))

    one_line(optlab("train", "--resume", str(bad)), 3, "config.yaml")
    reported = optlab("report", str(parent), "--no-plots", "--format", "json")
    assert reported.returncode == 0, reported.stderr
    assert f"skipped {bad}: config.yaml" in reported.stderr
    assert '"runs":1' in reported.stdout and '"completed":1' in reported.stdout  # the good run
