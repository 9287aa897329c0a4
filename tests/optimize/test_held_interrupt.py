"""Ctrl-C during a storage call is held until the call ends, then raised: the optimizer never
leaves a trial RUNNING that nobody fails (seen in CI: a SIGINT between ask() and recording the
trial as in flight)."""
from __future__ import annotations

import os
import signal
import time

import pytest

from rl.optimize.study import held_interrupt


def test_a_sigint_inside_the_block_is_raised_only_after_it_ends() -> None:
    before = signal.getsignal(signal.SIGINT)     # SIG_IGN when pytest runs as a background job
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with held_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)                  # the handler runs here; the block goes on
            steps.append("block finished")
    assert steps == ["block finished"]
    assert signal.getsignal(signal.SIGINT) is before


def test_no_sigint_means_no_interrupt_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    with held_interrupt():
        assert signal.getsignal(signal.SIGINT) is not before     # its own handler holds the signal
    assert signal.getsignal(signal.SIGINT) is before
