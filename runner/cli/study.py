"""`optlab study`: list the shipped studies, run one (or all), print the README's table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from optlab.cli.display import with_examples
from optlab.errors import ConfigError, Interrupted, rerun_hint


def register(subparsers) -> None:
    study = subparsers.add_parser("study", help="the lectures' claims, one command each: list, run, table",
                                  description="Shipped studies: a claim, its runs with seed repeats, a verdict.",
                                  **with_examples(("optlab study list", "the shipped studies and their claims"),
                                                  ("optlab study run he2015_deep_relu", "one study, start to verdict"),
                                                  ("optlab study table", "the verdicts as one table")))
    sub = study.add_subparsers(dest="study_command", metavar="ACTION")
    listing = sub.add_parser("list", help="the studies and their claims",
                             description="Each shipped study's name, its claim and its source (the paper).",
                             **with_examples(("optlab study list", "every study"),
                                             ("optlab study list | grep batchnorm", "the ones about batch norm")))
    listing.set_defaults(handler=list_studies)
    run = sub.add_parser("run", help="run a study (reusing its finished runs) and write its verdict",
                         description="Train a study's runs (its finished ones are reused, interrupted ones resumed), "
                                     "measure them, judge the criteria and write verdict.json, table.csv, runs.csv, "
                                     "study.md and the figure to --out/NAME.",
                         **with_examples(("optlab study run ioffe2015_batchnorm", "one study"),
                                         ("optlab study run ioffe2015_batchnorm --seeds 10", "more seeds; finished ones reused"),
                                         ("optlab study run symmetry --quick", "a few seconds: checks the pipeline")))
    run.add_argument("name", nargs="?", help="a study name (optlab study list) or a study YAML file")
    run.add_argument("--all", action="store_true", help="run every shipped study, one after another")
    run.add_argument("--quick", action="store_true", help="shrunk epochs and seeds: checks the pipeline, "
                                                          "never a reproduction (outputs/studies/quick/NAME)")
    run.add_argument("--seeds", type=int, metavar="N", help="seeds per arm (default: the study's)")
    run.add_argument("--population", metavar="K|auto", help="train up to K runs of one structure at once "
                                                            "(default: the study's, else auto)")
    run.add_argument("--out", metavar="DIR", default="outputs/studies", help="where study folders go")
    run.add_argument("--html", action="store_true", help="also write report.html in each study folder: the claim, "
                                                         "criteria, measures and figure as one interactive page")
    run.set_defaults(handler=run_studies)
    table = sub.add_parser("table", help="the README's table from the studies' verdict.json files",
                           description="One row per shipped study from its verdict.json under --out: the claim, "
                                       "the verdict and each criterion's effect with its interval.",
                           **with_examples(("optlab study table", "print the table"),
                                           ("optlab study table --docs docs/studies --readme README.md",
                                            "copy study pages and figures, update the README")))
    table.add_argument("--out", metavar="DIR", default="outputs/studies", help="where study folders are")
    table.add_argument("--docs", metavar="DIR", help="also copy each full study's study.md and figure here")
    table.add_argument("--readme", metavar="FILE", action="append",
                       help="also put the table into FILE between the lines <!-- studies --> and "
                            "<!-- /studies -->, its links relative to FILE (repeatable)")
    table.add_argument("--html", action="store_true", help="also write DIR/report.html: every study's claim, "
                                                           "criteria, measures and figure on one interactive page")
    table.set_defaults(handler=print_table)
    study.set_defaults(handler=lambda args: _missing_action(study))


def _missing_action(parser) -> int:
    parser.print_help()
    return 2


def list_studies(args) -> int:
    from optlab.study.spec import load_study, study_names

    for name in study_names():
        spec = load_study(name)
        print(f"{name:28s} {spec.claim} ({spec.source.split(';')[0]})")
    return 0


def run_studies(args) -> int:
    from optlab.cli.train import population_size
    from optlab.study.run import StudyOptions, run_study
    from optlab.study.spec import load_study, study_names

    if args.all == bool(args.name):
        raise ConfigError("optlab study run: give one study NAME or --all")
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds {args.seeds}: must be >= 1")
    names = study_names() if args.all else [args.name]
    specs = [load_study(name) for name in names]  # every file checked before anything runs
    options = StudyOptions(quick=args.quick, seeds=args.seeds, population=population_size(args.population),
                           out_root=Path(args.out))
    for spec in specs:
        try:
            verdict = run_study(spec, options)
        except Interrupted as exc:  # its finished runs are reused, stopped ones resumed, by a rerun
            raise exc.going_on(rerun_hint(f"go on where study {spec.name} stopped")) from None
        if args.html:
            _write_study_page(Path(verdict["folder"]) / "report.html", [(Path(verdict["folder"]), spec.figure)],
                              f"optlab study: {spec.name}")
        _print_verdict(verdict)
    return 0


def _write_study_page(path: Path, studies: list, title: str, overview: bool = False) -> None:
    from optlab.report import html_page, html_study

    html_page.write(path, html_study.study_page(studies, title, overview))
    print(f"wrote {path}", file=sys.stderr)


def _print_verdict(verdict: dict) -> None:
    from optlab.study.write import effect_text

    note = f" (quick; the criteria gave {verdict['quick_outcome']})" if verdict["quick"] else ""
    print(f"{verdict['study']}: {verdict['verdict']}{note} in {verdict['wall_time_s']:.0f} s", file=sys.stderr)
    for result in verdict["criteria"]:
        print(f"  {result['outcome']:15s} {result['criterion']}: {effect_text(result)}", file=sys.stderr)
    print(verdict["folder"], flush=True)


def print_table(args) -> int:
    import shutil

    from optlab.study.spec import study_names
    from optlab.study.write import readme_table

    out, verdicts = Path(args.out), []
    for name in study_names():
        path = out / name / "verdict.json"
        if path.is_file():
            verdicts.append(json.loads(path.read_text()))
    if args.docs:
        docs = Path(args.docs)
        docs.mkdir(parents=True, exist_ok=True)
        for v in verdicts:
            for file in ("study.md", v["figure"]):
                shutil.copyfile(out / v["study"] / file, docs / (f"{v['study']}.md" if file == "study.md" else file))
    if args.html:
        from optlab.study.spec import load_study

        _write_study_page(out / "report.html", [(out / v["study"], load_study(v["study"]).figure) for v in verdicts],
                          f"optlab studies: {out}", overview=True)
    pages = args.docs or "docs/studies"
    for readme in map(Path, args.readme or []):
        import os

        from optlab.runs.files import write_atomic
        from optlab.study.write import between_markers

        links = os.path.relpath(pages, readme.parent)  # README.md links docs/studies/, docs/studies.md studies/
        write_atomic(readme, between_markers(readme.read_text(), readme_table(verdicts, study_names(), links)))
    print(readme_table(verdicts, study_names(), pages))
    return 0
