"""`optlab list [GROUP]`: the config groups and their options, with one-line descriptions."""
from __future__ import annotations

from optlab.cli.display import with_examples

REFERENCE_INTRO = """\
# Options

Every option of every config group, with its keys, their defaults and the values they take,
as optlab's registries define them. `optlab list --format md` writes this page (a test
checks that it is current); `optlab list GROUP` shows one group in the terminal. Choose an
option with `group=option` and set a key with `group.key=value`; a key whose default is
null may be left null.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("list", help="list config groups and their options",
                              description="List every option of every config group (or of one group) "
                                          "with a one-line description and, for one group, its keys.",
                              **with_examples(("optlab list", "every group and option"),
                                              ("optlab list optimizer", "each optimizer's keys and defaults"),
                                              ("optlab list optimizer --format csv", "the same, for scripts")))
    p.add_argument("group", nargs="?", help="only this group, with each option's keys and defaults")
    p.add_argument("--config-dir", metavar="DIR", help="include the options of this extra config folder")
    p.add_argument("--format", choices=("table", "csv", "md"), default="table",
                   help="a rich table (the terminal's width; uncut when piped), CSV for scripts, or Markdown: "
                        "every option's keys, defaults and allowed values (the documentation's reference page)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from optlab.config.catalogue import GROUPS, flat_defaults, options

    groups = [args.group] if args.group else list(GROUPS)
    if args.format == "md":
        print(markdown(groups, args.config_dir, whole=not args.group), end="")
        return 0
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


def markdown(groups: list[str], config_dir: str | None, whole: bool) -> str:
    """A section per group: a table of its options, each with its description and its keys
    (`key=default`, then what the key takes); the whole reference page when `whole`."""
    from optlab.config.catalogue import key_rules, options

    lines = [REFERENCE_INTRO] if whole else []
    for group in groups:
        lines += [f"## {group}", "", "| option | description | keys: default (allowed values) |", "| --- | --- | --- |"]
        for option in options(group, config_dir):
            rules = key_rules(group, option.name, config_dir)
            keys = "<br>".join(_key_cell(key, value, rules.get(key, "")) for key, value in _flat(option.defaults))
            lines.append(f"| `{option.name}` | {_cell(option.description)} | {keys} |")
        lines.append("")
    return "\n".join(lines)


def _flat(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in values.items():
        out += _flat(value, f"{prefix}{key}.") if isinstance(value, dict) and value else [(f"{prefix}{key}", value)]
    return out


def _key_cell(key: str, value, rule: str) -> str:
    from optlab.registry import as_typed

    text = f"`{key}={as_typed(value)}`"
    return f"{text} ({_cell(rule)})" if rule else text


def _cell(text: str) -> str:
    """Text that stays inside its Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")
