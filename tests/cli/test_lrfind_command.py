"""`optlab lr-find`: its CSV and plot, and its flags checked."""


def test_cli_writes_csv_and_png(optlab, tmp_path):
    result = optlab("lr-find", "trainer.progress=false", "--steps", "60", "--max", "100")
    assert result.returncode == 0, result.stderr
    out = tmp_path / result.stdout.strip().splitlines()[-1]
    assert (out / "lr_find.csv").stat().st_size > 0 and (out / "lr_find.png").stat().st_size > 0
    assert "suggested" in result.stdout


def test_cli_rejects_min_above_max(optlab):
    result = optlab("lr-find", "--min", "1", "--max", "0.1")
    assert result.returncode == 2 and "--min" in result.stderr
