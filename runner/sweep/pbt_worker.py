"""A PBT sweep's worker: one Optuna trial per member, the members trained in lockstep in one
process (training.api.train_many with `lockstep`: one population when they share a
structure, else in turns), and PBT's rounds between their epochs (PbtPopulation, the
between-epochs hook).

A member is an ordinary run folder (summary.json `scheduler: pbt`); metrics.csv records its
value of each searched key at each epoch. Every member trains with the sweep's trainer.seed,
as every trial of a sweep does: the seed draws the data and its validation split (linreg's,
spirals'), so members ranked against each other learn the same problem and are measured on
the same examples (and start from the same weights). Its trial's params are its initial
values (drawn by the sweep's sampler), its value the member's at the sweep's `at`, and its
user attributes say its member number and lineage (optuna-dashboard shows them). A stopped
sweep's members continue, when it is run again, each in a new trial with the same initial
values and run folder (the stopped trial stays `interrupted`, as in every sweep).
"""
from __future__ import annotations

import copy
import math
import os
import random
import sys
from pathlib import Path

from optlab.errors import ConfigError, Interrupted, StorageError
from optlab.runs.files import CsvAppender
from optlab.runs.folder import checkpoint_to_resume, read_metric_rows
from optlab.runs.status import Status
from optlab.sweep.trials import job_attrs, worst_value
from optlab.sweep.pbt import Event, check_pbt_spec, is_round, plan_round
from optlab.sweep.pbt_state import (
    LINEAGE_FILE,
    PbtState,
    can_continue,
    commit_round,
    cut_logs,
    event_columns,
    read_state,
    roll_back,
    write_best_schedule,
    write_state,
)
from optlab.sweep.space import suggest, to_overrides
from optlab.training.driver import BetweenEpochs


def run_pbt_worker(worker) -> None:
    """The worker loop of a PBT sweep (Worker.run, for scheduler: pbt)."""
    from optlab.runs import lease
    from optlab.sweep.storage import open_storage
    from optlab.sweep.study import make_pruner, make_sampler, open_study, quiet_optuna

    check_pbt_spec(worker.spec)  # again: --extend may have changed the budget
    quiet_optuna()
    storage = open_storage(worker.storage_url)  # no heartbeats: a killed population's trials are its own to close
    study = open_study(worker.spec, storage, make_sampler(worker.spec, worker.spec.seed), make_pruner(worker.spec))
    lease.claim(worker.sweep_dir)  # one process per PBT population
    try:
        PbtPopulation(worker, study).run()
    finally:
        lease.release(worker.sweep_dir)


class PbtPopulation(BetweenEpochs):
    """The members of one PBT sweep, their trials, and the rounds between their epochs."""

    keeps_diverged = True  # a diverged member is revived by the next round (plan_round)

    def __init__(self, worker, study):
        from optlab.config.compose import Composer

        self.worker, self.study, self.spec, self.sweep_dir = worker, study, worker.spec, Path(worker.sweep_dir)
        self.compose = Composer(self.spec.config_dir)
        self.keys = [p.key for p in self.spec.space]
        self.trials: dict[int, object] = {}

    def run(self) -> None:
        from optlab.training.api import train_many

        state = read_state(self.sweep_dir)
        fresh = state is None
        if fresh:
            self.close_open_trials()  # a population killed before pbt.json: its trials go
            self.state = self.ask_members()
        else:
            self.state = state
            if not self.continue_members():
                return  # every member's trial is told: the population is done
        requests = [self.request(k, fresh) for k in range(len(self.state.members))]
        self.show()
        try:
            results = train_many(requests, run_root=self.sweep_dir / "runs", who=f"sweep {self.spec.study}",
                                 lockstep=self)
        except (Interrupted, StorageError) as exc:
            self.stop_trials(exc)
            raise
        self.finish(results)

    # ------------------------------------------------------------ members and trials

    def config(self, k: int):
        """Member k's config: the base and its initial values."""
        record, placement = self.state.members[k], self.worker.placement
        fixed = [f"trainer.name=member{k:02d}-trial{record['trial']:04d}", "trainer.progress=false",
                 *([f"trainer.device={placement.device}"] if placement.device else [])]
        cfg = self.compose([*self.spec.base, *record["overrides"], *fixed])
        if int(cfg.trainer.early_stop.patience):
            raise ConfigError("trainer.early_stop.patience: a PBT member trains every epoch of the population; "
                              "leave early stopping off (trainer.early_stop.patience=0)")
        return cfg

    def ask_members(self) -> PbtState:
        """A new population: K trials asked of the sampler, their values each member's initial ones."""
        members = []
        for k in range(int(self.spec.population)):
            trial = self.study.ask()
            assignment = suggest(trial, self.spec.space)
            initial = {p.key: assignment[p.name] for p in self.spec.space}
            members.append({"member": k, "trial": trial.number, "run_dir": None, "initial": initial,
                            "overrides": to_overrides(self.spec.space, assignment)})
            self.hold(k, trial, overrides=members[-1]["overrides"])
        seed = self.spec.seed if self.spec.seed is not None else random.SystemRandom().randrange(2**31)
        state = PbtState(seed, 0, members)
        self.state = state
        state.epochs = int(self.config(0).trainer.epochs)
        write_state(self.sweep_dir, state)
        return state

    def hold(self, k: int, trial, run_dir: str | None = None, overrides: list[str] = ()) -> None:
        self.trials[k] = trial
        for key, value in {"status": Status.RUNNING, "pbt_member": k, "scheduler": "pbt", "overrides": list(overrides),
                           "worker_pid": os.getpid(), "threads": self.worker.placement.threads, **job_attrs()}.items():
            trial.set_user_attr(key, value)
        if run_dir:
            trial.set_user_attr("run_dirs", [run_dir])

    def close_open_trials(self) -> None:
        """Trials left running by a killed process (this one holds the population's lease
        now): `interrupted`, as a signal would have left them."""
        import optuna
        from optuna.trial import TrialState

        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial = optuna.trial.Trial(self.study, frozen._trial_id)
            trial.set_user_attr("status", Status.INTERRUPTED)
            trial.set_user_attr("error", "its process was killed; the population continued from its checkpoints")
            self.study.tell(trial, state=TrialState.FAIL)

    def continue_members(self) -> bool:
        """A stopped population: its open trials closed, a new trial per member (its initial
        values, its run folder), and its checkpoints brought to one committed point. False
        when every member's trial is told already."""
        from optuna.trial import TrialState

        by_number = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        last = [by_number[m["trial"]] for m in self.state.members]
        if all(t.state == TrialState.COMPLETE for t in last):
            return False
        self.close_open_trials()
        for k, trial in enumerate(last):
            self.study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number, "pbt_member": k})
        waiting = set(range(len(last)))
        while waiting:  # the trials just queued (one queued by a process killed before it asked goes first)
            trial = self.study.ask()
            k = trial.user_attrs.get("pbt_member")
            if k not in waiting:
                trial.set_user_attr("status", Status.SURPLUS)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            waiting.remove(k)
            suggest(trial, self.spec.space)  # the queued initial values become its params
            self.state.members[k]["trial"] = trial.number
            self.hold(k, trial, self.state.members[k]["run_dir"], self.state.members[k]["overrides"])
        write_state(self.sweep_dir, self.state)
        self.bring_to_one_point()
        return True

    def bring_to_one_point(self) -> None:
        """The members' checkpoints at one committed point, else every member back to the last
        round (pbt_state's module docstring)."""
        cut_logs(self.sweep_dir, self.state)
        runs = [self.run_dir(k) for k in range(len(self.state.members))]
        checkpoints = [checkpoint_to_resume(run) if run else None for run in runs]
        rows = [read_metric_rows(run) if run else [] for run in runs]
        if not can_continue(self.state, checkpoints, rows, self.spec):
            print(f"sweep {self.spec.study}: the members' checkpoints are not at one committed point (a process was "
                  f"killed); every member goes back to epoch {self.state.committed} and trains on from there",
                  file=sys.stderr, flush=True)
            for run in runs:
                if run:
                    roll_back(run)

    def run_dir(self, k: int) -> Path | None:
        run = self.state.members[k]["run_dir"]
        return self.sweep_dir / run if run and (self.sweep_dir / run / "summary.json").is_file() else None

    def request(self, k: int, fresh: bool):
        from optlab.training.api import RunRequest

        return RunRequest(self.config(k), None if fresh else self.run_dir(k), columns=tuple(self.keys),
                          summary={"scheduler": "pbt", "pbt_member": k})

    # ------------------------------------------------------------ between epochs

    def start(self, driver) -> None:
        """The members' run folders noted, and their values as the last committed round left them."""
        from optlab.training.hyper import set_values

        if any(m["run_dir"] is None for m in self.state.members):
            for k, member in enumerate(driver.members):
                self.state.members[k]["run_dir"] = os.path.relpath(member.folder.dir, self.sweep_dir)
                self.trials[k].set_user_attr("run_dirs", [self.state.members[k]["run_dir"]])
            write_state(self.sweep_dir, self.state)
        for k, member in driver.active():
            CsvAppender(member.folder.dir / LINEAGE_FILE, event_columns(self.keys))  # its header, from the start
            set_values(member.parts, self.state.values(k))
            driver.engine.retuned(k)

    def end(self, driver, epoch: int, rows: dict[int, dict]) -> None:
        """A round when one is due, a diverged member's revival, and the commit (pbt_state)."""
        scores = {k: score(row, self.spec.metric) for k, row in rows.items()}
        last, due = epoch + 1 >= self.state.epochs, is_round(epoch, self.spec.pbt, self.state.epochs)
        events = [] if last else plan_round(epoch, scores, {k: self.state.values(k) for k in rows}, self.spec,
                                           self.state.seed, due)
        if not (events or due or last or not all(map(math.isfinite, scores.values()))):
            return
        if not last and not any(map(math.isfinite, scores.values())):
            self.end_all_diverged(driver, epoch, scores)
            return
        for event in events:
            self.exploit(driver, event)
        for _, member in driver.active():
            member.folder.checkpoint_now(driver.writer)
        driver.writer.drain()
        commit_round(self.sweep_dir, self.state, epoch, events, self.keys)
        if events:
            moves = ", ".join(f"{e.member} <- {e.donor}" for e in events)
            print(f"sweep {self.spec.study}: PBT after epoch {epoch}: {moves}", file=sys.stderr, flush=True)

    def exploit(self, driver, event: Event) -> None:
        """The taker gets the donor's weights, buffers, optimizer and schedule state; then its
        explored values."""
        from optlab.training.hyper import set_values

        taker, donor = driver.members[event.member], driver.members[event.donor]
        driver.engine.copy_member(event.donor, event.member)
        taker.folder.state.schedule = copy.deepcopy(donor.folder.state.schedule)
        set_values(taker.parts, event.after)
        driver.engine.retuned(event.member)

    def end_all_diverged(self, driver, epoch: int, scores: dict[int, float]) -> None:
        """No member has a finite metric: none can be revived, so every one ends diverged."""
        from optlab.training.driver import outcome_of
        from optlab.training.run_folder import Diverged

        for k, member in driver.active():
            driver.end_member(k, outcome_of(Diverged(epoch, scores[k]), member.folder.dir))

    # ------------------------------------------------------------ the end

    def finish(self, results: list) -> None:
        """Each member's trial told its value and lineage; best_schedule.yaml of the best one."""
        values = {}
        for k, result in enumerate(results):
            values[k] = self.tell_member(k, result)
        best = best_member(values, self.spec.direction)
        if best is not None:
            write_best_schedule(self.sweep_dir, self.state, self.spec, best, values[best])
        self.show()

    def tell_member(self, k: int, result) -> float | None:
        from optuna.trial import TrialState

        trial, rows = self.trials[k], read_metric_rows(result.run_dir) if result.run_dir else []
        value = member_value(rows, self.spec)
        lineage = [{"epoch": e["epoch"], "donor": e["donor"], "values": e["after"]} for e in self.state.events_of(k)]
        trial.set_user_attr("lineage", lineage)
        trial.set_user_attr("final_values", self.state.values(k))
        if result.status == Status.COMPLETED and value is not None:
            trial.set_user_attr("seed_values", [value])
            trial.set_user_attr("status", Status.COMPLETED)
            self.study.tell(trial, value)
        elif result.status in (Status.COMPLETED, Status.DIVERGED):
            trial.set_user_attr("status", Status.DIVERGED)
            self.study.tell(trial, worst_value(self.spec.metric, self.spec.direction))
        else:
            trial.set_user_attr("status", Status.FAILED)
            trial.set_user_attr("error", str(result.summary.get("reason"))[:500])
            self.study.tell(trial, state=TrialState.FAIL)
        return value

    def stop_trials(self, exc: Exception) -> None:
        """A signal or a refused write: every member's trial ends `interrupted`; the same
        command continues the population from its checkpoints."""
        from optuna.trial import TrialState

        stopped = "interrupted by a signal" if isinstance(exc, Interrupted) else str(exc)
        how = ("the next Slurm worker resumes it from its checkpoint" if job_attrs() else
               "rerun the same `optlab sweep` command to continue the population")
        for trial in self.trials.values():
            trial.set_user_attr("status", Status.INTERRUPTED)
            trial.set_user_attr("error", f"{stopped}; {how}")
            self.study.tell(trial, state=TrialState.FAIL)
        self.show()

    def show(self) -> None:
        if self.worker.after_trial is not None:
            self.worker.after_trial()


def best_member(values: dict[int, float | None], direction: str) -> int | None:
    """The member with the best finite value (the lowest number among equals); None if none has one."""
    sign = -1.0 if direction == "maximize" else 1.0
    finite = [(sign * v, k) for k, v in values.items() if v is not None and math.isfinite(v)]
    return min(finite)[1] if finite else None


def score(row: dict, metric: str) -> float:
    """A row's metric as a number (NaN where it has none)."""
    value = row.get(metric)
    return float(value) if value is not None else math.nan


def member_value(rows: list[dict], spec) -> float | None:
    """A member's value: its metric at its best or final epoch (None where that is not finite)."""
    values = [score(r, spec.metric) for r in rows]
    if spec.at == "final":
        return values[-1] if values and math.isfinite(values[-1]) else None
    finite = [v for v in values if math.isfinite(v)]
    return (max(finite) if spec.direction == "maximize" else min(finite)) if finite else None
