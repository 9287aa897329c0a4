"""Clocks the agent runs on: real time live, a scaled clock for replay, a manual one for tests.

The agent never calls time.time() or time.sleep() itself; it asks its clock. That is what lets
replay and backtest drive the very same code faster than real time (parity with live).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol


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


class RecordingClock:
    """Another clock that shows each new time only once `record` has taken it: a replay writes
    it to its store, so whatever the world did (and whoever read the time) a restart resumes
    from there or later instead of rewinding (web.world). A failed record is logged, never
    raised: the runner's loop sleeps on this clock and must go on (the store's own times are
    a floor for the resume anyway). Other attributes (finished, end_ms, speed) are the
    wrapped clock's."""

    def __init__(self, inner: Clock, record: Callable[[int], None]) -> None:
        self._inner = inner
        self._record = record
        self._shown = inner.now_ms()

    def now_ms(self) -> int:
        return self._shown

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        woke = self._inner.sleep(seconds, stop)
        now = self._inner.now_ms()
        if now != self._shown:
            try:
                self._record(now)
            except Exception:       # noqa: BLE001 - see the class doc
                logging.getLogger(__name__).warning("could not record the world time %d", now, exc_info=True)
            self._shown = now
        return woke

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
