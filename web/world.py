"""Wiring for `python -m web.app`: which market-data port, exchange, store and runner to use.

Replay (`--replay PATH`): archive 1m klines stepped bar by bar by a BarClock, PaperExchange.
Paper: live Binance klines (LiveMarketData), PaperExchange.  Testnet/live: BinanceExchange.

A missing market or agent is not fatal: the dashboard still serves the page and says why
(`market_note`, `runner_note`), so a trader sees the reason instead of a dead port. Only bad
configuration (SettingsError, e.g. an unusable --replay path) stops start-up.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from config import Settings
from rl.clock import Clock, SystemClock
from rl.errors import AgentError, SettingsError
from web.service import internal_error_message

log = logging.getLogger("web.world")

DAY_MS = 86_400_000
# Replay starts this far into the archive (at most half of it), so the 15m/8h charts and the
# agent's indicators have history from the first minute instead of a handful of candles.
REPLAY_WARMUP_MS = 30 * DAY_MS
# Why the agent could not be built, in words the trader can act on: a refused setting or store
# write, a missing package, an unwritable database path. Their messages are shown as they are.
_FIXABLE_BUILD_FAILURES = (AgentError, ImportError, OSError)


@dataclass
class World:
    settings: Settings
    market: Any | None
    runner: Any | None
    clock: Clock
    market_note: str | None = None
    runner_note: str | None = None
    replay: dict[str, Any] | None = None


def replay_start_ms(start_ms: int, end_ms: int) -> int:
    """Where the replay clock starts: after a warm-up, but never past the middle of the data."""
    return start_ms + min(REPLAY_WARMUP_MS, max(0, (end_ms - start_ms) // 2))


def load_replay_frames(settings: Settings, symbol_given: bool) -> dict[str, Any]:
    """symbol -> ArchiveData for the replay; SettingsError (one line) when the path is unusable."""
    from rl.market.archive import archive_symbols, load_archive, load_symbols

    path = settings.replay_dir
    assert path is not None
    try:
        if symbol_given:
            return load_symbols(path, settings.symbols)
        try:
            data = load_archive(path)
        except (FileNotFoundError, ValueError) as first:
            # An archive root: the configured SYMBOLS if it holds them, else its first symbol
            # (a newcomer's `--replay ../shared/data` should just work; --symbol picks another).
            try:
                return load_symbols(path, settings.symbols)
            except (FileNotFoundError, ValueError):
                there = archive_symbols(path)
                if there:
                    log.warning("SYMBOLS=%s not in %s: replaying %s (also there: %s; choose with --symbol)",
                                ",".join(settings.symbols), path, there[0], ", ".join(there[1:]) or "-")
                    return load_symbols(path, (there[0],))
                raise SettingsError(f"--replay={str(path)!r} is invalid: "
                                    f"{str(first).replace('pass symbol=', 'choose one with --symbol SYMBOL')}"
                                    ) from None
        if data.symbol is None:
            raise SettingsError(f"--replay={str(path)!r} is invalid: cannot tell the symbol from "
                                "the file names; give it with --symbol SYMBOL")
        return {data.symbol: data}
    except (FileNotFoundError, ValueError) as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"--replay={str(path)!r} is invalid: {exc}") from None


def build_market(settings: Settings, symbol_given: bool) -> tuple[Settings, Any, Clock, dict | None]:
    """(settings with the replayed symbols, market port, clock, replay facts or None)."""
    if settings.replaying:
        from rl.backtest.data import replay_clock
        from rl.market.ports import ReplayMarketData

        datas = load_replay_frames(settings, symbol_given)
        symbols = tuple(datas)
        if symbols != tuple(settings.symbols):
            settings = settings.with_overrides(symbols=symbols)
        start = min(d.start_ms for d in datas.values())
        end = max(d.end_ms for d in datas.values())
        frames = {s: d.frame for s, d in datas.items()}
        # BarClock steps exactly the closed 1m bars a backtest steps (a ScaledClock drifts to
        # mid-minute times by however long each cycle took), so replay trades = backtest trades.
        clock: Clock = replay_clock(frames, replay_start_ms(start, end), settings.replay_speed)
        market = ReplayMarketData(frames, clock)
        gaps = sum(len(d.gaps) for d in datas.values())
        replay = {"path": str(settings.replay_dir), "symbols": list(symbols), "speed": settings.replay_speed,
                  "data_start_ms": start, "data_end_ms": end, "clock_start_ms": clock.now_ms(),
                  "gaps": gaps}
        log.info("replaying %s from %s at %gx (%d gaps)", ",".join(symbols), settings.replay_dir,
                 settings.replay_speed, gaps)
        return settings, market, clock, replay

    from client import BinanceClient
    from rl.market.ports import LiveMarketData

    clock = SystemClock()
    client = BinanceClient(market_url=settings.market_data_url, trade_url=settings.trade_url,
                           api_key=settings.api_key or None, api_secret=settings.api_secret or None,
                           timeout=settings.request_timeout)
    return settings, LiveMarketData(client, clock), clock, None


def build_exchange(settings: Settings, market: Any) -> Any:
    if settings.trading_mode == "paper" or settings.replaying:
        from rl.paper.exchange import PaperExchange

        db = settings.db_path.with_name(settings.db_path.stem + "-paper" + settings.db_path.suffix)
        # live paper reads Binance's real symbol filters (tick, step, min notional) from the
        # public exchangeInfo; replay has no network and derives them from the price
        live_client = getattr(market, "client", None)
        return PaperExchange(db, balance=settings.paper_balance, maker_fee=settings.maker_fee,
                             taker_fee=settings.taker_fee, default_leverage=settings.leverage,
                             clock=market.now_ms, price_source=market.last_price,
                             filters_source=live_client.symbol_filters if live_client else None)
    from rl.execution.binance import BinanceExchange

    # testnet/live never replay, so the market port is live and its client already carries the
    # keys and both hosts: one client means one Retry-After block, one clock offset and one
    # used-weight count for everything this process sends to Binance
    return BinanceExchange(market.client, name=settings.trading_mode)


def build_runner(settings: Settings, market: Any, clock: Clock) -> tuple[Any | None, str | None]:
    """The real AgentRunner, or (None, why) when a piece of the core cannot be built."""
    try:
        from rl.agent.runner import AgentRunner
        from rl.analysis.levels.finder import DEFAULT_WEIGHTS
        from rl.knowledge.store import KnowledgeStore
        from rl.paper.exchange import PaperExchange

        settings.db_path.parent.mkdir(parents=True, exist_ok=True)
        store = KnowledgeStore(settings.db_path, default_weights=DEFAULT_WEIGHTS)
        exchange = build_exchange(settings, market)
        # paper and replay: nobody else shows the simulated exchange the market, the agent does
        feed = exchange if isinstance(exchange, PaperExchange) else None
        return AgentRunner(settings, market, exchange, store, clock, feed=feed), None
    except Exception as exc:  # noqa: BLE001 - the page must still come up and say why
        if isinstance(exc, _FIXABLE_BUILD_FAILURES):
            note = f"{type(exc).__name__}: {exc}"
            log.error("cannot build the trading agent (%s); the dashboard runs without it", note)
            log.debug("trading agent build failure", exc_info=True)
        else:
            # the note is shown by the page and the API: a bug's own text stays in the log
            note = internal_error_message(exc, "the trading agent could not be built")
            log.error("cannot build the trading agent; the dashboard runs without it", exc_info=exc)
        return None, note


def build_world(settings: Settings, replay_symbol: str | None = None) -> World:
    settings, market, clock, replay = build_market(settings, symbol_given=replay_symbol is not None)
    runner, note = build_runner(settings, market, clock)
    return World(settings=settings, market=market, runner=runner, clock=clock,
                 runner_note=note, replay=replay)
