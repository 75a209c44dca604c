"""Errors -> one line and an exit code; a signal's line says how to go on."""
import signal

from optlab.errors import Interrupted, rerun_hint, resume_hint


def test_an_interruption_is_one_line_with_the_commands_next_step():
    stopped = Interrupted(signal.SIGTERM)
    assert (str(stopped), stopped.exit_code) == ("interrupted by SIGTERM", 143)
    told = stopped.going_on(resume_hint("out/runs/a"))
    assert str(told) == "interrupted by SIGTERM; resume with `optlab train --resume out/runs/a`"
    assert told.exit_code == 143 and told.signum == signal.SIGTERM
    assert resume_hint(["out/a", "out/b"]) == "resume each with `optlab train --resume RUN` (RUN: out/a, out/b)"
    assert rerun_hint("continue it to 4 trials") == "rerun the same command to continue it to 4 trials"
