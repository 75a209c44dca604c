"""How long the report page (`optlab report --html`) takes to open in headless Chromium.

Generates a sweep of 1,000 run folders (250 trials x 4 seeds, as tests/testkit.py's
make_generated_sweep writes them) and, as the baseline, one of 12 runs (the size of the
shipped lr_wd sweep's quick budget); reports both with `--html`, opens each page three times
in Debian's Chromium through Playwright with every non-file request blocked, and prints the
page sizes, the times from navigation to every chart drawn, and their ratio.

    python bench/report_page.py [--trials 250] [--seeds 4]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from testkit import make_generated_sweep, open_page  # noqa: E402  (the tests' own generator)


def page_of(sweep: Path) -> Path:
    from optlab.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
        assert main(["report", str(sweep), "--html", "--no-plots"]) == 0
    return Path(out.getvalue().strip().splitlines()[-1]) / "report.html"


def open_times(browser, page_file: Path, opens: int = 3) -> list[float]:
    times = []
    for _ in range(opens):
        opened = open_page(browser, page_file)
        assert opened.errors == [] and opened.requests == [], (opened.errors, opened.requests)
        times.append(opened.ready_ms)
        opened.page.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=250)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        cases = {"baseline, 12 runs": make_generated_sweep(Path(tmp) / "small", trials=12),
                 f"{args.trials * args.seeds:,} runs": make_generated_sweep(Path(tmp) / "big", args.trials, args.seeds)}
        best = {}
        for name, sweep in cases.items():
            page_file = page_of(sweep)
            times = open_times(browser, page_file)
            best[name] = min(times)
            print(f"{name}: {page_file.stat().st_size / 1e6:.2f} MB, opened in "
                  f"{', '.join(f'{t:.0f}' for t in times)} ms")
        small, big = best.values()
        print(f"ratio (best of 3 opens): {big / small:.2f}x the baseline page's time")
        browser.close()


if __name__ == "__main__":
    main()
