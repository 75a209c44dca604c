"""The documentation: a README that reads in five minutes with every link whole, a MkDocs site
that builds with --strict (a broken link or anchor, or a page missing from the navigation,
fails it), and the API page's notebook session, run as written."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from testkit import REPO

README_MAX_LINES = 250
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return "".join(part for i, part in enumerate(re.split(r"^```.*$", text, flags=re.MULTILINE)) if i % 2 == 0)


def anchors(path) -> set[str]:
    """The anchors of a Markdown file's headings, as GitHub and MkDocs make them."""
    headings = re.findall(r"^#+ (.+)$", prose(path.read_text()), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-") for heading in headings}


def broken_links(path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(path.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file) if file else path
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    return broken


def test_the_readme_reads_in_five_minutes():
    assert len((REPO / "README.md").read_text().splitlines()) <= README_MAX_LINES


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_every_link_of_the_top_level_pages_resolves(name):
    assert broken_links(REPO / name) == []


def test_the_link_check_finds_a_missing_page_and_a_missing_anchor(tmp_path):
    (tmp_path / "page.md").write_text("# A page\n\n## Its part\n")
    (tmp_path / "README.md").write_text("[ok](page.md#its-part) [gone](nothing.md) [no anchor](page.md#other)\n"
                                        "```\n[in code](nowhere.md)\n```\n[web](https://example.org/x)\n")
    assert broken_links(tmp_path / "README.md") == ["nothing.md", "page.md#other"]


def test_every_page_is_in_the_sites_navigation():
    def pages(entries) -> set[str]:
        found = set()
        for entry in entries:
            for value in (entry.values() if isinstance(entry, dict) else [entry]):
                found |= pages(value) if isinstance(value, list) else {value}
        return found

    nav = pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"])
    assert nav == {path.name for path in (REPO / "docs").glob("*.md")}  # docs/studies/ is linked from studies.md


def test_the_site_builds_with_mkdocs_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install '.[docs]'")
    pytest.importorskip("material", reason="mkdocs-material is not installed: pip install '.[docs]'")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
                           "--site-dir", str(tmp_path / "site")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "options" / "index.html").is_file()


@pytest.mark.slow
def test_the_api_pages_notebook_session_runs_as_written(tmp_path):
    cells = re.findall(r"^```python\n(.*?)^```", (REPO / "docs" / "api.md").read_text(), flags=re.MULTILINE | re.DOTALL)
    assert len(cells) >= 5
    done = subprocess.run([sys.executable, "-c", "\n".join(cells)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "outputs" / "runs").iterdir())) == 7  # one run, then six in a population
    assert (tmp_path / "outputs" / "sweeps" / "lr_wd" / "trials.csv").is_file()
    assert (tmp_path / "outputs" / "studies" / "quick" / "symmetry" / "verdict.json").is_file()
    assert done.stdout.splitlines()[-1].startswith("2 optimizer.lr=-1")
