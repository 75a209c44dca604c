"""`optlab train`: --cfg, a run's exit codes, --resume (a real SIGTERM), Hydra's grammar, -m grids."""
import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from testkit import TINY, optlab_executable


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_cfg_prints_the_composed_config_without_training(optlab, tmp_path):
    result = optlab("train", "--cfg", "optimizer=adam", "optimizer.lr=3e-4")
    assert result.returncode == 0
    assert "name: adam" in result.stdout and "lr: 0.0003" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_divergence_exits_4_and_keeps_rows(optlab, tmp_path):
    result = optlab("train", *TINY, "optimizer.lr=1e6")
    assert result.returncode == 4
    run = tmp_path / last_line(result.stdout)
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"
    assert "diverged" in result.stderr and "Traceback" not in result.stderr


def test_bad_resume_folder_exits_3(optlab, tmp_path):
    (tmp_path / "empty").mkdir()
    result = optlab("train", "--resume", "empty")
    assert result.returncode == 3 and "config.yaml" in result.stderr


def metric_values(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "samples_per_s")} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_sigterm_then_resume_matches_an_uninterrupted_run(tmp_path):
    args = ["train", "model=cnn", "model.channels=8", "model.dropout=0.2", "trainer.epochs=6",
            "trainer.progress=false"]
    proc = subprocess.Popen([*optlab_executable(), *args, "trainer.out_dir=a"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        tables = list((tmp_path / "a").glob("runs/*/metrics.csv"))
        if tables and len(tables[0].read_text().splitlines()) >= 3:  # header + 2 epochs
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    run = tmp_path / last_line(out)
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    assert (run / "checkpoint.pt").exists() and len(metric_values(run)) >= 2

    resumed = subprocess.run([*optlab_executable(), "train", "--resume", str(run)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    alone = subprocess.run([*optlab_executable(), *args, "trainer.out_dir=b"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert_same_metrics(metric_values(run), metric_values(tmp_path / last_line(alone.stdout)))
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def assert_same_metrics(a: list[dict], b: list[dict]) -> None:
    """Identical on a CPU; on a GPU (the run picks it) equal to float32 rounding, since CUDA
    kernels may sum in another order in another process."""
    import torch

    if not torch.cuda.is_available():
        assert a == b
        return
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for ra, rb in zip(a, b, strict=True):
        for key in ra:
            assert float(ra[key] or "nan") == pytest.approx(float(rb[key] or "nan"), rel=1e-5, nan_ok=True), key


@pytest.mark.parametrize("args, fragment", [
    (["optimizer.lr=null"], "optimizer.lr=null: expected a number"),
    (["trainer.seed=null"], "trainer.seed=null: expected an integer"),
    (["model.depth=null"], "model.depth=null: expected an integer"),
    (["batch.size=null"], "batch.size=null: expected an integer"),
    (["~optimizer.lr"], "optimizer.lr is required"),
    (["optimizer=sgd,adam"], "optimizer=sgd,adam: several values make a sweep, which needs -m"),
    (["hydra.run.dir=x"], "hydra.run.dir=x: optlab does not use Hydra's job settings"),
    (["hydra.job.chdir=true"], "set trainer.out_dir and trainer.name instead"),
    (["optimizer=adam", "optimizer.momentum=0.9"],
     "optimizer.momentum: unknown key, not a key of optimizer=adam; "
     "optimizer=momentum, optimizer=nesterov and optimizer=rmsprop have it"),
    (["optimizer.lr=${trainer.name}"], "optimizer.lr=${trainer.name} resolves to 'digits-mlp-sgd': expected a number"),
    (["--cfg", "bogus"], "--cfg bogus: choose from: job, all"),
    (["--cfg", "hydra"], "--cfg hydra: optlab has no hydra config"),
])
def test_hydra_grammar_mistakes_exit_2_with_one_line(optlab, tmp_path, args, fragment):
    result = optlab("train", *TINY, "model.width=8", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("optlab: error: ") and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("kind", ["job", "all"])
def test_cfg_takes_hydras_job_and_all(optlab, tmp_path, kind):
    result = optlab("train", "--cfg", kind, "optimizer=adam")
    assert result.returncode == 0, result.stderr
    assert "name: adam" in result.stdout and "hydra" not in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_multirun_glob_runs_every_matching_option_into_one_folder(optlab, tmp_path):
    result = optlab("train", "-m", "optimizer=glob(ada*)", "trainer.epochs=1",
                    "trainer.progress=false", "model.width=8")
    assert result.returncode == 0, result.stderr
    *runs, grid = result.stdout.strip().splitlines()
    assert (tmp_path / grid).parent == tmp_path / "outputs" / "multirun"
    optimizers = [yaml.safe_load((tmp_path / run / "config.yaml").read_text())["optimizer"]["name"] for run in runs]
    assert optimizers == ["adadelta", "adagrad", "adam", "adamw"]
    assert all((tmp_path / run).parent == tmp_path / grid for run in runs)


def test_multirun_cfg_prints_the_configs_and_trains_nothing(optlab, tmp_path):
    result = optlab("train", "-m", "optimizer=sgd,adam", "trainer.epochs=1", "--cfg")
    assert result.returncode == 0, result.stderr
    assert [d["optimizer"]["name"] for d in yaml.safe_load_all(result.stdout)] == ["sgd", "adam"]
    assert not (tmp_path / "outputs").exists()


def test_resume_takes_overrides_of_how_it_runs_and_refuses_what_it_learns(optlab, tmp_path, monkeypatch):
    from testkit import sigterm_at_step

    restore = sigterm_at_step(monkeypatch, 30)
    stopped = optlab("train", "trainer.epochs=2", "trainer.progress=false", "trainer.log_every=1")
    restore()
    run = last_line(stopped.stdout)
    assert stopped.returncode == 143
    config = (tmp_path / run / "config.yaml").read_text()
    refused = optlab("train", "--resume", run, "trainer.progress=false", "optimizer.lr=0.5")
    assert refused.returncode == 2 and refused.stderr.startswith("optlab: error: optimizer.lr=0.5: --resume continues")
    assert len(refused.stderr.strip().splitlines()) == 1
    resumed = optlab("train", "--resume", run, "trainer.progress=false", "trainer.threads=1", "trainer.device=cpu")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / run / "summary.json").read_text())
    assert (summary["status"], summary["threads"], summary["epochs_done"]) == ("completed", 1, 2)
    assert (tmp_path / run / "config.yaml").read_text() == config  # the run's own values stay
    assert "run completed" not in resumed.stdout  # trainer.progress=false: no summary table
