"""A run stopped by a signal ends as *stopped*, never as finished.

Lightning ends ``fit`` quietly on SIGTERM (its ``SIGTERMException`` is a ``SystemExit`` with
code 0) and with code 1 on Ctrl+C, so a scheduler, a shell ``&&`` or a loop took a pre-empted
run for a finished one: no results.json, and in a pipeline the next stage never started. ltcl
handles the stop signals itself for the whole command (:func:`install`):

- during training (:func:`training`) the first signal asks Lightning to stop after the current
  step, through the flag its own SIGTERM handler sets; a second one stops at once;
- elsewhere (a sampling round before training, the evaluation) it stops at once;

and the command prints one line (the signal, the last checkpointed epoch, "run the same command
to resume") and exits with 128 + the signal number, the shell's convention. Checkpoints are
written atomically (:mod:`ltcl.run.checkpoints`), so ``last.ckpt`` stays the last finished
epoch's. A handler another program installed (submitit's, which requeues a pre-empted SLURM job)
is left in place.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# SIGUSR1/2: what SLURM's --signal sends before a time limit or pre-emption (sbatch --signal).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)  # fmt: skip

_received: list[int] = []  # the signals this process received, in order
_trainer: Any = None  # the Lightning trainer while it trains (see training())


class RunStopped(Exception):
    """A signal stopped the run; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, checkpoint: Path | None = None):
        self.signum = signum
        self.exit_code = 128 + signum
        self.checkpoint = checkpoint
        super().__init__(stop_message(signum, checkpoint))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def checkpointed_epochs(checkpoint: Path | None) -> int | None:
    """Epochs finished in ``checkpoint`` (Lightning stores the index of the last one)."""
    if checkpoint is None or not checkpoint.is_file():
        return None
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
        return int(state["epoch"]) + 1
    except Exception:  # a message only: never mask the stop itself
        return None


def stop_message(signum: int, checkpoint: Path | None) -> str:
    epochs = checkpointed_epochs(checkpoint)
    if epochs is None:
        saved = "no epoch was checkpointed yet"
    else:
        saved = f"{checkpoint} holds {epochs} finished epoch{'s' if epochs != 1 else ''}"
    return f"stopped by {signal_name(signum)}: {saved}; run the same command to resume"


def received() -> int | None:
    """The first stop signal this process received, if any."""
    return _received[0] if _received else None


def _handle(signum: int, frame) -> None:
    _received.append(signum)
    if _trainer is not None and len(_received) == 1:
        # Lightning checks this flag after every step (all ranks, in DDP) and stops there.
        _trainer._signal_connector.received_sigterm = True
        if signum == signal.SIGINT:
            print(
                "\n[ltcl] Ctrl+C: stopping after the current step (press again to stop now)",
                file=sys.stderr,
                flush=True,
            )
        return
    raise KeyboardInterrupt  # outside training, or a second signal: stop now


def install() -> None:
    """Handle the stop signals in this process, except where another program (submitit)
    already installed a handler of its own."""
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, signal.default_int_handler, _handle):
            signal.signal(signum, _handle)


@contextlib.contextmanager
def training(trainer) -> Iterator[None]:
    """While Lightning's fit runs, a stop signal ends training after the current step."""
    global _trainer
    _trainer = trainer
    try:
        yield
    finally:
        _trainer = None


@contextlib.contextmanager
def stops_as(checkpoint: Path | None) -> Iterator[None]:
    """Whatever ends the block after a stop signal (Lightning's SystemExit, a
    KeyboardInterrupt, a normal return) leaves it as :class:`RunStopped`, which names
    ``checkpoint``."""
    try:
        yield
    except RunStopped:
        raise
    except BaseException as error:
        signum = received()
        if signum is None and type(error).__name__ == "SIGTERMException":
            signum = signal.SIGTERM  # in DDP, a rank that Lightning stopped for rank 0's signal
        if signum is None:
            raise
        raise RunStopped(signum, checkpoint) from None
    if received() is not None:
        raise RunStopped(received(), checkpoint)


def is_process_zero() -> bool:
    return os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) in ("0", "")
