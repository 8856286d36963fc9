"""How a console command reports errors: one ``ltcl: error:`` line and exit code 2.

Every check on user input raises an :mod:`ltcl.errors` error that names the problem and the
fix; here a console command (a Hydra app) prints it, and Hydra's own composition errors, as one
line instead of a traceback.
"""

import contextlib

from ltcl.conf import CONFIG_DIR, retired
from ltcl.errors import LtclError
from ltcl.run import stopping
from ltcl.run.config_checks import is_read_when_appended


def _traceback_requested(cfg=None) -> bool:
    import os

    return os.environ.get(
        "LTCL_USER_HYDRA_FULL_ERROR", os.environ.get("HYDRA_FULL_ERROR")
    ) == "1" or bool(cfg is not None and cfg.get("verbose"))


def one_line(error: BaseException) -> str:
    """A multi-line message (Hydra's "Available options in 'model':" lists) as one line."""
    parts: list[str] = []
    for line in str(error).splitlines():
        line = line.strip()
        if line.startswith("Config search path"):  # Hydra's internals, not the user's fix
            break
        if not line or line.startswith(("full_key:", "object_type=")):
            continue
        if parts and parts[-1].endswith(":") and not line.endswith(":"):
            parts[-1] = f"{parts[-1]} {line}"
        elif parts and ":" in parts[-1] and parts[-1].split(":")[0].startswith("Available options"):
            parts[-1] = f"{parts[-1]}{'' if parts[-1].endswith(':') else ','} {line}"
        else:
            parts.append(line)
    text = ""
    for part in parts:
        text += part if not text else (" " if text.endswith(".") else "; ") + part
    return text


def _close_keys(message: str, config_name: str) -> list[str]:
    """Keys spelled like the one Hydra could not override, in the config as the user's other
    overrides compose it (``method=guide`` brings ``method.sampler.*``; the default does not)."""
    import re
    import sys

    match = re.search(r"Could not override '([^']+)'", message)
    if not match:
        return []
    key = match.group(1)
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        from ltcl.run.config_checks import config_keys, suggest_keys

        others = [
            a for a in sys.argv[1:]
            if "=" in a and not a.startswith("-") and a.lstrip("+~").split("=", 1)[0] != key
        ]  # fmt: skip
        for overrides in (others, []):  # the user's own config, else the default one
            GlobalHydra.instance().clear()
            try:
                with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                    cfg = compose(config_name=config_name, overrides=overrides)
                return suggest_keys(key, config_keys(cfg))
            except Exception:
                continue
        return []
    except Exception:  # a hint only: never mask the real error
        return []


def filesystem_message(error: BaseException) -> str | None:
    """One line for a file system that refuses a write (read-only, no permission, full),
    naming the path and the setting that moves it; None for any other error."""
    import errno

    if not isinstance(error, OSError) or error.errno not in (
        errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT
    ):  # fmt: skip
        return None
    path = error.filename or "a file"
    return (
        f"cannot write {path} ({error.strerror}): point LTCL_LOG_DIR (run directories) or "
        "LTCL_DATA_DIR (datasets and caches) at a writable folder with free space, or set "
        "paths.log_dir=... / paths.data_dir=..."
    )


def run_console(hydra_main, config_name: str, program: str = "ltcl") -> None:
    """Run a ``@hydra.main`` function as a console command.

    A config Hydra cannot compose (an unknown group option, a key that does not exist, an
    override that does not parse) prints as one ``ltcl: error:`` line with Hydra's own hint,
    exit code 2, like ltcl's own errors. ``HYDRA_FULL_ERROR=1`` keeps the traceback.
    """
    import os
    import re
    import sys

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if "LTCL_USER_HYDRA_FULL_ERROR" not in os.environ:
        os.environ["LTCL_USER_HYDRA_FULL_ERROR"] = os.environ.get("HYDRA_FULL_ERROR", "")
    wants_traceback = _traceback_requested()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing; we print
    stopping.install()
    try:
        with _stopped_exits(program):
            hydra_main()
    except (LtclError, HydraException, OmegaConfBaseException) as error:
        cause = error.__cause__ if isinstance(error.__cause__, LtclError) else error
        if wants_traceback or os.environ.get("SUBMITIT_EXECUTOR"):
            raise
        message = one_line(cause)
        missing = re.match(r"Missing mandatory value: ([\w.]+)", message)
        if missing:
            message = (
                f"{missing.group(1)} has no value and this config needs one: give it on the "
                f"command line, {missing.group(1)}=..."
            )
        if "override_grammar" in message or "LexerNoViableAltException" in message:
            odd = [a for a in sys.argv[1:] if "=" in a and not a.split("=", 1)[1].isascii()]
            if odd:  # Hydra's lexer takes only ASCII in an unquoted value
                key, value = odd[0].split("=", 1)
                message += (
                    f". A value with non-ASCII characters must be quoted: '{key}=\"{value}\"' "
                    "(the single quotes keep the shell from removing the double ones)"
                )
        overridden = re.search(r"Could not override '([^']+)'", message)
        if overridden and retired(overridden.group(1)):
            message = retired(overridden.group(1))  # a key conf/ retired: the one way now
        elif overridden:
            key = overridden.group(1)
            close = _close_keys(message, config_name)
            if not is_read_when_appended(key):
                # Hydra's "To append to your config use +key=value" would train without the
                # setting: nothing reads an appended key outside the free-form groups.
                message = f"Could not override '{key}': the config has no such key"
            message += f". Did you mean {' or '.join(close)}?" if close else ""
            message += " (see every key with --cfg job)"
        print(f"{program}: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except OSError as error:
        # Hydra makes the run directory before ltcl's code runs. (After the Hydra errors:
        # its MissingConfigException is an IOError too.)
        message = filesystem_message(error)
        if message is None or wants_traceback or os.environ.get("SUBMITIT_EXECUTOR"):
            raise
        print(f"{program}: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


@contextlib.contextmanager
def _stopped_exits(program: str = "ltcl"):
    """A run stopped by a signal (:mod:`ltcl.run.stopping`) never exits 0: it prints one line
    (the signal, the last checkpoint, how to resume) and exits with 128 + the signal."""
    import os
    import sys

    try:
        try:
            yield
        except stopping.RunStopped:
            raise
        except BaseException as error:
            signum = stopping.received()
            if signum is None or (isinstance(error, SystemExit) and error.code == 128 + signum):
                raise  # no signal, or an inner command level has already said it
            raise stopping.RunStopped(signum) from None
    except stopping.RunStopped as stop:
        if os.environ.get("SUBMITIT_EXECUTOR"):
            raise  # submitit reports it to the sweep (and requeues where it is told to)
        if stopping.is_process_zero():
            print(f"{program}: {stop}", file=sys.stderr, flush=True)
        raise SystemExit(stop.exit_code) from None


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
            with _stopped_exits():  # here, before Hydra logs it as a failed job
                return task(cfg)
        except LtclError as error:
            if _traceback_requested(cfg) or os.environ.get("SUBMITIT_EXECUTOR"):
                raise
            print(f"ltcl: error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except OSError as error:
            message = filesystem_message(error)
            if message is None or _traceback_requested(cfg) or os.environ.get("SUBMITIT_EXECUTOR"):
                raise
            print(f"ltcl: error: {message}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper
