"""Errors that name the problem and the fix.

Every check on user input raises one of these *before* compute is spent, so that a
misconfigured sweep fails in seconds rather than after an hour on a cluster.
"""


class LtclError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class DataError(LtclError, ValueError):
    """A dataset path, layout, split file or image is unusable."""


class ConfigError(LtclError, ValueError):
    """A config value is unknown, out of range or inconsistent."""


class TrainingError(LtclError, RuntimeError):
    """Training cannot go on (for example, the loss became NaN)."""


def report_errors(task):
    """Decorate a Hydra task function: an ltcl error prints as one line and exits with code 2.

    Hydra would print a traceback; ours already say what is wrong and how to fix it. Set
    HYDRA_FULL_ERROR=1 (or verbose=true) for the full traceback. Inside a SLURM job
    (submitit) the error is raised as it is: submitit sends it back to the sweep that
    submitted the job, which then fails with this message instead of waiting on a dead job.
    """
    import functools
    import os
    import sys

    @functools.wraps(task)
    def wrapper(cfg):
        try:
            return task(cfg)
        except LtclError as error:
            if (
                os.environ.get("HYDRA_FULL_ERROR") == "1"
                or os.environ.get("SUBMITIT_EXECUTOR")
                or cfg.get("verbose")
            ):
                raise
            print(f"ltcl: error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper
