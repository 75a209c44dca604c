"""`optlab compare`: bad input is one line with exit 2, before anything trains."""
import pytest


@pytest.mark.parametrize("args, words", [
    (["compare", "lecture_optimisers"], ["no such file or built-in comparison", "did you mean lecture_optimizers"]),
    (["compare", "lecture_optimizers", "--jobs", "0"], ["--jobs 0", ">= 1"]),
    (["compare", "lecture_optimizers", "--population", "many"], ["--population many"]),
    (["compare", "bad.yaml"], ["unknown key 'workload'", "did you mean workloads"]),
])
def test_bad_input_is_one_line_and_exit_2(optlab, tmp_path, args, words):
    (tmp_path / "bad.yaml").write_text("workload: {}\n")
    done = optlab(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert not (tmp_path / "outputs").exists()


def test_a_bad_key_in_a_contenders_space_stops_before_any_run(optlab, tmp_path):
    text = (
        "workloads:\n  w: {base: [data=digits, model=mlp, model.width=8], metric: val_acc, target: auto, epochs: 1,"
        " margin: 0.01}\n"
        "contenders:\n  a: {overrides: [optimizer=sgd], space: {optimizer.lr: {low: 0.01, high: 1.0}}}\n"
        "  b: {overrides: [optimizer=adam], space: {optimizer.momentum: {low: 0.5, high: 0.9}}}\n"
        "protocol: {tuning: {studies: 1, trials: 1}, rerun_seeds: 2}\n")
    (tmp_path / "typo.yaml").write_text(text)
    done = optlab("compare", "typo.yaml")
    assert done.returncode == 2 and "optimizer.momentum" in done.stderr, done.stderr
    assert not list(tmp_path.glob("outputs/comparisons/typo/sweeps/*/runs/*"))
