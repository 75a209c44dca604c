"""`optlab list` piped: not cut to the terminal, and as CSV."""
from __future__ import annotations

from testkit import REPO

from optlab.cli.app import main


def test_list_piped_is_not_cut_and_speaks_csv(tmp_path, capsys):
    assert main(["list", "optimizer"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and "adagrad" in out and "initial_accumulator_value=0.0" in out
    assert main(["list", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "group,option,description" and any(line.startswith("optimizer,adagrad,") for line in lines)


def test_the_documentations_options_page_is_what_list_md_prints(capsys):
    assert main(["list", "--format", "md"]) == 0
    page = (REPO / "docs" / "options.md").read_text()
    assert capsys.readouterr().out == page, "regenerate it: optlab list --format md > docs/options.md"


def test_list_md_names_every_key_with_its_default_and_what_it_takes(capsys):
    from optlab.config.catalogue import GROUPS, option_keys, options

    assert main(["list", "--format", "md"]) == 0
    sections = capsys.readouterr().out.split("\n## ")[1:]
    rows = {section.split("\n", 1)[0]: {line.split(" | ")[0][3:-1]: line for line in section.splitlines()
                                        if line.startswith("| `")} for section in sections}
    assert list(rows) == list(GROUPS)
    assert "`lr=0.001` (> 0)" in rows["optimizer"]["adam"] and "`lr_scale=null`" in rows["optimizer"]["adam"]
    assert "`position=pre` (one of: pre, post)" in rows["norm"]["batch"] and "`noise=false`" in rows["norm"]["batch"]
    for group in ("optimizer", "init", "schedule"):
        for option in options(group):
            assert all(f"`{key}=" in rows[group][option.name] for key in option_keys(group, option.name))
    assert main(["list", "norm", "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("## norm\n")
