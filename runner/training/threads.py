"""trainer.threads: how many torch threads a run's process computes with.

`auto` is the usable cores but one, shared by the processes optlab runs at once (a sweep's
workers; one for a run, a multirun or a study, which train one run or one population at a
time): (cores - 1) // processes, at least 1. The core left over is headroom: OpenMP's
threads wait on each other at every parallel region, so a thread per core stalls whenever
anything else wants a core, and optlab's built-in models are too small for a second thread
to pay (README, Threads: on 2 cores with other work running, the default run took 7.9x as
long with 2 threads as with 1). A number asks for that many, but never more than the
process's share of the cores (cores // processes): workers never oversubscribe. The count
in effect is recorded in summary.json; results are bitwise repeatable at a fixed count.
"""
from __future__ import annotations

import os

_processes = 1  # optlab processes computing at once on this machine, this one among them (share_cores)


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by OMP_NUM_THREADS when set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(cap)) if cap.isdigit() and int(cap) > 0 else cores


def share_cores(processes: int) -> None:
    """This process is one of `processes` that optlab runs at once (a sweep worker): its runs
    take their share of the cores."""
    global _processes
    _processes = max(1, int(processes))


def resolve(setting, cores: int | None = None, processes: int | None = None) -> int:
    """The thread count for trainer.threads (`auto` or a number), by the rule above."""
    cores = usable_cores() if cores is None else cores
    processes = _processes if processes is None else processes
    if str(setting) == "auto":
        return max(1, (cores - 1) // processes)
    return max(1, min(int(setting), cores // processes))


def use_threads(setting) -> int:
    """Set this process's torch threads for a run; the count in effect."""
    import torch

    threads = resolve(setting)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
