"""`optlab list [GROUP]`: the config groups and their options, with one-line descriptions."""
from __future__ import annotations

from optlab.cli.display import with_examples


def register(subparsers) -> None:
    p = subparsers.add_parser("list", help="list config groups and their options",
                              description="List every option of every config group (or of one group) "
                                          "with a one-line description and, for one group, its keys.",
                              **with_examples(("optlab list", "every group and option"),
                                              ("optlab list optimizer", "each optimizer's keys and defaults"),
                                              ("optlab list optimizer --format csv", "the same, for scripts")))
    p.add_argument("group", nargs="?", help="only this group, with each option's keys and defaults")
    p.add_argument("--config-dir", metavar="DIR", help="include the options of this extra config folder")
    p.add_argument("--format", choices=("table", "csv"), default="table",
                   help="a rich table (the terminal's width; uncut when piped) or CSV for scripts")
    p.set_defaults(handler=run)


def run(args) -> int:
    from optlab.config.catalogue import GROUPS, flat_defaults, options

    groups = [args.group] if args.group else list(GROUPS)
    header = ["group", "option", "description"] + (["keys (defaults)"] if args.group else [])
    rows = [[group, option.name, option.description] + ([" ".join(flat_defaults(option.defaults))] if args.group else [])
            for group in groups for option in options(group, args.config_dir)]
    if args.format == "csv":
        import csv
        import sys

        csv.writer(sys.stdout, lineterminator="\n").writerows([header, *rows])
        return 0
    from rich.table import Table

    from optlab.cli.display import print_table

    table = Table(title="optlab config options" if not args.group else f"{args.group} options")
    for name in header:
        table.add_column(name, style="bold" if name == "option" else None)
    for row in rows:
        table.add_row(*row)
    print_table(table)
    return 0
