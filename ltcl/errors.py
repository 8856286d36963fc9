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
