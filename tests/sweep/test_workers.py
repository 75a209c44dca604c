"""The worker loop (the budget, running peers, start-up) and workers' placement on cores and GPUs."""
from __future__ import annotations

import optuna
import pytest
from testkit import study_of, sweep_folder, tiny_spec, write_sweep

from optlab.cli.app import main
from optlab.sweep.storage import open_storage
from optlab.sweep.study import open_study
from optlab.sweep.workers import Worker


def test_worker_waits_for_a_running_peer_instead_of_starting_past_the_budget(tmp_path, storage_url):
    spec = tiny_spec(tmp_path, trials=2)
    folder = sweep_folder(tmp_path, "unit")
    folder.mkdir(parents=True)
    study = open_study(spec, open_storage(storage_url))
    study.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
    peer = study.ask()  # RUNNING in "another worker"
    waits = []

    def sleep(seconds):  # the peer finishes while we wait
        waits.append(seconds)
        study.tell(peer, 0.8)

    Worker(spec, folder, storage_url, sleep=sleep).run()
    assert len(waits) == 1
    assert len(study.get_trials()) == 2  # nothing started past the budget


def test_workers_split_cores_on_cpu_and_go_round_robin_over_gpus():
    from optlab.sweep.workers import plan

    cpu = plan(2, per_gpu=1, gpus=0, cores=2)
    assert [(p.worker, p.threads, p.device, p.processes) for p in cpu] == [(0, 1, None, 2), (1, 1, None, 2)]
    assert plan(None, per_gpu=1, gpus=0, cores=8)[0].threads == 7  # the cores but one (trainer.threads=auto)
    gpu = plan(None, per_gpu=2, gpus=2, cores=16)
    assert [p.device for p in gpu] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"] and gpu[0].threads == 3
    assert [p.device for p in plan(3, per_gpu=1, gpus=2, cores=16)] == ["cuda:0", "cuda:1", "cuda:0"]


def test_a_workers_start_up_is_not_counted_in_its_first_trial(tmp_path, monkeypatch):
    """The first trial starts only once the worker has imported and composed what it needs."""
    import optlab.sweep.workers as study_module

    ready = {}
    real_warm_up = study_module.warm_up

    def warm_up(spec):
        real_warm_up(spec)
        ready["at"] = __import__("datetime").datetime.now()

    monkeypatch.setattr(study_module, "warm_up", warm_up)
    assert main(["sweep", str(write_sweep(tmp_path, trials=1))]) == 0
    assert study_of(tmp_path).trials[0].datetime_start >= ready["at"]


@pytest.mark.slow
def test_two_workers_never_oversubscribe_the_cores(tmp_path):
    """--jobs 2: each worker's runs take at most half the cores, an explicit trainer.threads
    too (recorded in each run's summary.json)."""
    import json

    from testkit import TINY_BASE, run_optlab

    from optlab.training.threads import usable_cores

    base = [*TINY_BASE, "trainer.threads=8", f"trainer.out_dir={tmp_path / 'outputs'}"]
    path = write_sweep(tmp_path, trials=2, base=base)
    done = run_optlab("sweep", str(path), "--jobs", "2", cwd=tmp_path, env={"OMP_NUM_THREADS": ""})
    assert done.returncode == 0, done.stderr
    cores = usable_cores()
    summaries = [json.loads(p.read_text()) for p in (sweep_folder(tmp_path) / "runs").glob("*/summary.json")]
    assert len(summaries) == 2 and {s["threads"] for s in summaries} == {max(1, min(8, cores // 2))}
