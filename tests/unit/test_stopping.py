"""ltcl.run.stopping without a process to kill: the message, the conversion, the handlers."""

from __future__ import annotations

import signal

import pytest
import torch

from ltcl.run import stopping


@pytest.fixture(autouse=True)
def clean_state(monkeypatch):
    monkeypatch.setattr(stopping, "_received", [])
    monkeypatch.setattr(stopping, "_trainer", None)


def test_the_message_names_the_signal_the_checkpoint_and_the_way_on(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"epoch": 4}, ckpt)
    stop = stopping.RunStopped(signal.SIGTERM, ckpt)
    assert stop.exit_code == 143
    assert str(stop) == (
        f"stopped by SIGTERM: {ckpt} holds 5 finished epochs; run the same command to resume"
    )
    assert "no epoch was checkpointed yet" in str(stopping.RunStopped(signal.SIGINT, None))
    assert stopping.RunStopped(signal.SIGINT).exit_code == 130


def test_whatever_ends_the_block_after_a_signal_becomes_a_stop(tmp_path):
    class SIGTERMException(SystemExit):  # Lightning's, with exit code 0
        pass

    with pytest.raises(SystemExit):  # no signal: untouched
        with stopping.stops_as(None):
            raise SystemExit(0)
    with pytest.raises(stopping.RunStopped) as stop:  # a rank stopped for rank 0's signal
        with stopping.stops_as(None):
            raise SIGTERMException()
    assert stop.value.signum == signal.SIGTERM
    stopping._received.append(signal.SIGINT)
    with pytest.raises(stopping.RunStopped) as stop:  # Lightning's exit(1) after Ctrl+C
        with stopping.stops_as(None):
            raise SystemExit(1)
    assert stop.value.exit_code == 130
    with pytest.raises(stopping.RunStopped):  # training ended normally, but a signal came
        with stopping.stops_as(None):
            pass


def test_in_training_the_first_signal_asks_lightning_to_stop_and_the_second_stops_now():
    class Connector:
        received_sigterm = False

    class Trainer:
        _signal_connector = Connector()

    trainer = Trainer()
    with stopping.training(trainer):
        stopping._handle(signal.SIGTERM, None)  # returns: Lightning stops after this step
        assert trainer._signal_connector.received_sigterm
        with pytest.raises(KeyboardInterrupt):
            stopping._handle(signal.SIGTERM, None)
    with pytest.raises(KeyboardInterrupt):  # outside training: at once
        stopping._handle(signal.SIGTERM, None)


def test_a_handler_another_program_installed_is_kept(monkeypatch):
    def submitit_handler(signum, frame):
        pass

    previous = {s: signal.getsignal(s) for s in stopping.STOP_SIGNALS}
    try:
        signal.signal(signal.SIGUSR2, submitit_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        stopping.install()
        assert signal.getsignal(signal.SIGUSR2) is submitit_handler
        assert signal.getsignal(signal.SIGTERM) is stopping._handle
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
