"""Clocks the agent runs on: real time live, a scaled clock for replay, a manual one for tests.

The agent never calls time.time() or time.sleep() itself; it asks its clock. That is what lets
replay and backtest drive the very same code faster than real time (parity with live).
"""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time in ms since the epoch (UTC), in the agent's world."""

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait `seconds` of world time; return True early if `stop` was set."""


class SystemClock:
    """Wall-clock time; sleeping wakes promptly when the stop event is set."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is None:
            time.sleep(max(0.0, seconds))
            return False
        return stop.wait(max(0.0, seconds))


class ScaledClock:
    """World time that starts at `start_ms` and runs `speed` times faster than the wall clock.

    Used by replay: archive candles appear as if live, N times faster.
    """

    def __init__(self, start_ms: int, speed: float = 1.0, wall: SystemClock | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed={speed!r} is invalid: it must be > 0")
        self._start_ms = int(start_ms)
        self._speed = float(speed)
        self._wall_start = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        return self._start_ms + int((time.monotonic() - self._wall_start) * 1000 * self._speed)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        wall = max(0.0, seconds) / self._speed
        if stop is None:
            time.sleep(wall)
            return False
        return stop.wait(wall)


class ManualClock:
    """A clock that only moves when told to: sleeping advances it instantly (tests, backtest)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = int(start_ms)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def set(self, ms: int) -> None:
        with self._lock:
            self._now = int(ms)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += int(seconds * 1000)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is not None and stop.is_set():
            return True
        self.advance(seconds)
        return False
