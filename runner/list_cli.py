"""`optlab list [GROUP]`: the config groups and their options, with one-line descriptions."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("list", help="list config groups and their options",
                              description="List every option of every config group (or of one group) "
                                          "with a one-line description and, for one group, its keys.")
    p.add_argument("group", nargs="?", help="only this group, with each option's keys and defaults")
    p.add_argument("--config-dir", metavar="DIR", help="include the options of this extra config folder")
    p.set_defaults(handler=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from runner.catalogue import GROUPS, flat_defaults, options

    groups = [args.group] if args.group else list(GROUPS)
    table = Table(title="optlab config options" if not args.group else f"{args.group} options")
    table.add_column("group")
    table.add_column("option", style="bold")
    table.add_column("description")
    if args.group:
        table.add_column("keys (defaults)")
    for group in groups:
        for option in options(group, args.config_dir):
            row = [group, option.name, option.description]
            if args.group:
                row.append(" ".join(flat_defaults(option.defaults)))
            table.add_row(*row)
    Console(width=200 if not Console().is_terminal else None).print(table)
    return 0
