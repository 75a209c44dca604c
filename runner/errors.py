"""User-facing errors. The CLI maps each to a one-line message and an exit code."""
import sys


def print_error_line(message: str) -> None:
    """`optlab: error: ...` on stderr, on one line whatever the message's own line breaks."""
    print(f"optlab: error: {' '.join(str(message).split())}", file=sys.stderr)


class OptlabError(Exception):
    """Base class: an error the user can act on; never shown with a traceback."""

    exit_code = 1
    result = None  # the RunResult of a run that ended this way, when there is one

    def with_result(self, result):
        self.result = result
        return self


class ConfigError(OptlabError):
    """Bad config value, unknown option or bad command-line usage."""

    exit_code = 2


class DataError(OptlabError):
    """Missing or corrupt dataset file, or an unreadable checkpoint / run folder."""

    exit_code = 3


class TrainingFailed(OptlabError):
    """The run could not finish: diverged (NaN/inf loss) or out of memory."""

    exit_code = 4


class Interrupted(OptlabError):
    """Stopped by SIGINT (130) or SIGTERM (143) after saving what was done."""

    def __init__(self, signum: int):
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}; resume with `optlab train --resume RUN_FOLDER`")
        self.exit_code = 128 + signum


class Pruned(OptlabError):
    """A sweep trial stopped early by the pruner (not an error for the sweep)."""

    exit_code = 0
