"""User-facing errors. The CLI maps each to a one-line message and an exit code."""
import errno
import os
import sys


def print_error_line(message: str) -> None:
    """`optlab: error: ...` on stderr, on one line whatever the message's own line breaks."""
    print(f"optlab: error: {' '.join(str(message).split())}", file=sys.stderr)


def choose_from(value, choices) -> str:
    """The valid choices for a bad value, the closest one first when one is close (difflib):
    'did you mean adam? choose from: adadelta, adagrad, adam, ...'."""
    import difflib

    listed = [str(c) for c in choices]
    close = difflib.get_close_matches(str(value), listed, n=1, cutoff=0.6)
    return (f"did you mean {close[0]}? " if close else "") + f"choose from: {', '.join(listed)}"


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


class StorageError(OptlabError):
    """The machine refused a write: disk full, read-only or forbidden output folder, or a
    file standing where a folder should be. Nothing already written is lost."""

    exit_code = 5


STORAGE_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a file stands where a folder should be",
    errno.EEXIST: "a file stands where a folder should be",
    errno.EISDIR: "a folder stands where a file should be",
    errno.ELOOP: "a symlink, which optlab never writes through",
    errno.EIO: "an input/output error from the disk",
}


def storage_error(exc: BaseException, path=None) -> "StorageError | None":
    """The StorageError for an OSError the environment caused (None for anything else),
    naming the path; SQLite's 'database or disk is full' and read-only errors count too."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError) and exc.errno in STORAGE_REASONS:
        where = path or exc.filename or "(unknown path)"
        return StorageError(f"{os.fspath(where)}: {STORAGE_REASONS[exc.errno]}")
    text = str(exc).lower()
    for phrase, reason in (("database or disk is full", errno.ENOSPC), ("readonly database", errno.EROFS),
                           ("read-only file system", errno.EROFS)):
        if type(exc).__name__ == "OperationalError" and phrase in text:
            return StorageError(f"{path or 'the study database'}: {STORAGE_REASONS[reason]}")
    return None


class TrainingFailed(OptlabError):
    """The run could not finish: diverged (NaN/inf loss) or out of memory."""

    exit_code = 4


class Interrupted(OptlabError):
    """Stopped by SIGINT (130) or SIGTERM (143) after saving what was done. Its message is one
    line: the signal, then how to go on, which only the command knows (a run's folder, the
    same sweep or study command again): the command tells it with going_on()."""

    def __init__(self, signum: int, next_step: str = ""):
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}" + (f"; {next_step}" if next_step else ""))
        self.signum, self.exit_code = signum, 128 + signum

    def going_on(self, next_step: str) -> "Interrupted":
        """The same stop, told with the command's own next step."""
        return Interrupted(self.signum, next_step).with_result(self.result)


def resume_hint(run_dirs) -> str:
    """How to go on with run folders a signal stopped: a solo run's, or a population's
    members' (one `optlab train --resume` each)."""
    folders = [os.fspath(d) for d in ([run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else run_dirs)]
    if len(folders) == 1:
        return f"resume with `optlab train --resume {folders[0]}`"
    return f"resume each with `optlab train --resume RUN` (RUN: {', '.join(folders)})"


def rerun_hint(what: str) -> str:
    """How to go on with a command that picks up where it stopped (a sweep, a study)."""
    return f"rerun the same command to {what}"


class StorageUnreachable(Interrupted):
    """A sweep's study storage did not answer within its outage deadline: the running trial
    stopped as a signal stops it (checkpoint, `interrupted`), the sweep ends (exit 5)."""

    def __init__(self, message: str):
        Exception.__init__(self, message)
        self.exit_code = 5


class Pruned(OptlabError):
    """A sweep trial stopped early by the pruner (not an error for the sweep)."""

    exit_code = 0
