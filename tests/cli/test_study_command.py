"""optlab study list | run | table, through main()."""


def test_study_list_names_every_study_with_its_claim(optlab):
    done = optlab("study", "list")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) >= 14
    assert any(line.startswith("he2015_deep_relu") and "30-layer ReLU MLP" in line for line in lines)


def test_study_run_needs_one_name_or_all(optlab):
    assert optlab("study", "run").returncode == 2
    done = optlab("study", "run", "symmetry", "--all")
    assert done.returncode == 2 and "give one study NAME or --all" in done.stderr


def test_an_unknown_study_exits_2_naming_the_known_ones(optlab):
    done = optlab("study", "run", "nope")
    assert done.returncode == 2 and "choose from:" in done.stderr and "symmetry" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_study_table_says_which_studies_are_still_to_run(optlab):
    done = optlab("study", "table")
    assert done.returncode == 0
    assert "| symmetry | | not run in full yet | | |" in done.stdout


def test_a_quick_run_prints_its_folder_last_and_says_quick(optlab, tmp_path):
    done = optlab("study", "run", "glorot2010_depth", "--quick", "--seeds", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "outputs/studies/quick/glorot2010_depth"
    assert "inconclusive (quick; the criteria gave" in done.stderr


def test_study_table_puts_the_table_into_each_readme_with_links_from_there(optlab, tmp_path):
    import json

    folder = tmp_path / "outputs" / "studies" / "symmetry"
    folder.mkdir(parents=True)
    effect = {"diff": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    (folder / "verdict.json").write_text(json.dumps(
        {"study": "symmetry", "claim": "Zero init never breaks symmetry.", "verdict": "reproduced", "quick": False,
         "criteria": [{"outcome": "reproduced", "label": "unit_spread", "effect": effect}], "wall_time_s": 2.0,
         "figure": "symmetry.png"}))
    (folder / "study.md").write_text("# symmetry\n")
    (folder / "symmetry.png").write_bytes(b"png")
    (tmp_path / "docs").mkdir()
    page = "# Studies\n<!-- studies -->\nold\n<!-- /studies -->\nafter\n"
    for name in ("README.md", "docs/studies.md"):
        (tmp_path / name).write_text(page)
    done = optlab("study", "table", "--docs", "docs/studies", "--readme", "README.md", "--readme", "docs/studies.md")
    assert done.returncode == 0, done.stderr
    readme, studies = ((tmp_path / name).read_text() for name in ("README.md", "docs/studies.md"))
    assert "| [symmetry](docs/studies/symmetry.md) | Zero init never breaks symmetry. | **reproduced** |" in readme
    assert readme.replace("](docs/studies/", "](studies/") == studies
    assert (tmp_path / "docs" / "studies" / "symmetry.md").is_file()
    assert studies.startswith("# Studies\n<!-- studies -->\n| study |") and studies.endswith("<!-- /studies -->\nafter\n")
def test_a_studys_log_names_the_study_not_multirun(optlab):
    result = optlab("study", "run", "saturation", "--quick")
    assert result.returncode == 0, result.stderr
    assert "multirun" not in result.stderr
    assert "study saturation: large-seed0 trains alone: trainer.diagnostics=true" in result.stderr
