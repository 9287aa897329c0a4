"""Wiring for `python -m web.app`: which market-data port, exchange, store and runner to use.

Replay (`--replay PATH`): archive 1m klines stepped bar by bar by a BarClock, PaperExchange.
Paper: live Binance klines (LiveMarketData), PaperExchange.  Testnet/live: BinanceExchange.

A replay resumes where its store left off (see docs/backtest.md "Replay restarts"): the
replay clock's every step is written to the knowledge store (agent_state `replay_clock_ms`)
before the agent acts at it, and a restart starts at the latest of that row and every time
the two stores hold (trades, exits, orders, logs; paper fills, funding, the account clock),
never earlier. Each replay data set has its own store by default
(data/agent-replay-<symbols>-<data set id>.db); a store of another data set is refused. Paper,
testnet and live have their own too (data/<mode>/agent.db, config.default_db_path), so no mode
shows another's trades or wallet; an explicit DB_PATH is used as given. In paper mode the
dashboard can start the account over (reset_paper_runner: the old files are moved aside).

A missing market or agent is not fatal: the dashboard still serves the page and says why
(`market_note`, `runner_note`), so a trader sees the reason instead of a dead port. Only bad
configuration (SettingsError, e.g. an unusable --replay path) stops start-up.
"""
from __future__ import annotations

import hashlib
import logging
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import config
from config import Settings
from rl.clock import Clock, RecordingClock, SystemClock
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
# the replay's rows in the knowledge store's agent_state
REPLAY_CLOCK_KEY = "replay_clock_ms"        # the world time the replay clock last reached
REPLAY_DATASET_KEY = "replay_dataset"       # which data the store's replay is of


@dataclass
class World:
    settings: Settings
    market: Any | None
    runner: Any | None
    clock: Clock
    market_note: str | None = None
    runner_note: str | None = None
    replay: dict[str, Any] | None = None
    # paper mode only: (the stopped runner) -> a runner on a fresh store and account
    reset_paper: Callable[[Any], Any] | None = None


def replay_start_ms(start_ms: int, end_ms: int) -> int:
    """Where the replay clock starts: after a warm-up, but never past the middle of the data."""
    return start_ms + min(REPLAY_WARMUP_MS, max(0, (end_ms - start_ms) // 2))


def _interval_folder(path: Path) -> Path:
    """`.../klines/FILUSDT` holds `1m/` (and maybe other intervals): replay its 1m folder."""
    one_minute = path / "1m"
    return one_minute if path.is_dir() and one_minute.is_dir() else path


def load_replay_frames(settings: Settings, symbol_given: bool) -> dict[str, Any]:
    """symbol -> ArchiveData for the replay; SettingsError (one line) when the path is unusable."""
    from rl.market.archive import archive_symbols, load_archive, load_symbols

    path = settings.replay_dir
    assert path is not None
    try:
        there = archive_symbols(path)
        if symbol_given:
            missing = [s for s in settings.symbols if there and s not in there]
            if missing:
                # `--symbol FILUSDT,XRPUSDT` on a root without XRPUSDT: say what it does hold
                raise SettingsError(f"--symbol={','.join(settings.symbols)!r} is invalid: "
                                    f"--replay={str(path)!r} has no {', '.join(missing)} "
                                    f"(it holds {', '.join(there)})")
            # one archive root, one or several symbols (a comma list): one replay, one account
            return load_symbols(path if there else _interval_folder(path), settings.symbols)
        if len(there) > 1:
            # several symbols and none chosen: say which, never pick one silently
            raise SettingsError(f"--replay={str(path)!r} holds several symbols ({', '.join(there)}): "
                                "choose one with --symbol SYMBOL, or several with --symbol "
                                f"{','.join(there[:2])}")
        if there:
            return load_symbols(path, there)
        # a symbol folder (.../klines/FILUSDT), an interval folder, a folder of zips or a file
        data = load_archive(_interval_folder(path))
        if data.symbol is None:
            raise SettingsError(f"--replay={str(path)!r} is invalid: cannot tell the symbol from "
                                "the file names; give it with --symbol SYMBOL")
        return {data.symbol: data}
    except (FileNotFoundError, ValueError) as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"--replay={str(path)!r} is invalid: {exc}") from None


def replay_dataset(datas: dict[str, Any]) -> dict[str, Any]:
    """What a replay store is a replay of: the symbols and archive file names (and the span),
    with a short `id` over them (another symbol, month or file set -> another id)."""
    symbols = sorted(datas)
    files = sorted({Path(f).name for d in datas.values() for f in d.files})
    start = min(d.start_ms for d in datas.values())
    end = max(d.end_ms for d in datas.values())
    key = "|".join([",".join(symbols), ",".join(files), str(start), str(end)])
    return {"id": hashlib.sha256(key.encode()).hexdigest()[:12], "symbols": symbols, "files": files,
            "data_start_ms": start, "data_end_ms": end}


def replay_db_path(settings: Settings, dataset: dict[str, Any]) -> Path:
    """DB_PATH left unset: one store per replay data set in the store folder, so a replay never
    shares trades, weights or the paper account with paper mode or another data set."""
    if not settings.db_path_is_default:
        return settings.db_path
    syms = dataset["symbols"]
    name = "-".join(syms) if len(syms) <= 3 else f"{syms[0]}-and-{len(syms) - 1}-more"
    return config.STORE_ROOT / f"agent-replay-{name}-{dataset['id']}.db"


def mode_db_path(settings: Settings) -> Path:
    """The store of paper, testnet or live: DB_PATH when given, else the mode's own
    (config.default_db_path), so one mode never shows another's trades or wallet."""
    if not settings.db_path_is_default:
        return settings.db_path
    return config.default_db_path(settings.trading_mode)


def paper_db_path(settings: Settings) -> Path:
    return settings.db_path.with_name(settings.db_path.stem + "-paper" + settings.db_path.suffix)


def replay_resume_ms(store: Any, paper_db: Path, dataset: dict[str, Any]) -> int | None:
    """The world time a replay on `store` resumes from (None: a fresh store), or SettingsError
    (one line) when the store is another data set's."""
    from rl.paper.store import last_time_ms

    stored = store.get_state(REPLAY_DATASET_KEY)
    if stored is not None and stored.get("id") != dataset["id"]:
        raise SettingsError(
            f"DB_PATH={str(store.path)!r} holds the replay of another data set "
            f"({', '.join(stored.get('symbols', []))}, {len(stored.get('files', []))} files, "
            f"id {stored.get('id')}; this one: "
            f"{', '.join(dataset['symbols'])}, {len(dataset['files'])} files, id {dataset['id']}): give "
            f"another --db, or leave DB_PATH unset for a store per data set")
    times = [t for t in (store.get_state(REPLAY_CLOCK_KEY), store.last_event_ms(), last_time_ms(paper_db))
             if t is not None]
    if not times:
        return None
    last = max(int(t) for t in times)
    if stored is None and last > dataset["data_end_ms"]:
        # no data-set row (a store of paper mode, or of a version before this one) with history
        # after this data ends: resuming there would finish the replay at once
        raise SettingsError(
            f"DB_PATH={str(store.path)!r} holds history up to {_iso(last)}, after this replay's data ends "
            f"({_iso(dataset['data_end_ms'])}): it is another mode's or data set's store; give another "
            f"--db, or leave DB_PATH unset for a store per data set")
    return last


def _iso(ms: int) -> str:
    import pandas as pd

    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")


def build_market(settings: Settings, symbol_given: bool, store: Any | None = None,
                 datas: dict[str, Any] | None = None) -> tuple[Settings, Any, Clock, dict | None]:
    """(settings with the replayed symbols, market port, clock, replay facts or None).

    Replay with a knowledge `store` (for `settings.db_path`): the clock resumes from it and
    records every step in it (see the module doc). `datas`: the replay frames if loaded."""
    if settings.replaying:
        from rl.backtest.data import BarSchedule, replay_clock
        from rl.market.ports import ReplayMarketData

        if datas is None:
            datas = load_replay_frames(settings, symbol_given)
        symbols = tuple(datas)
        if symbols != tuple(settings.symbols):
            settings = settings.with_overrides(symbols=symbols)
        start = min(d.start_ms for d in datas.values())
        end = max(d.end_ms for d in datas.values())
        frames = {s: d.frame for s, d in datas.items()}
        dataset = replay_dataset(datas)
        first = replay_start_ms(start, end)
        resumed = None
        if store is not None:
            resumed = replay_resume_ms(store, paper_db_path(settings), dataset)
            if resumed is not None:
                # the first step at or after it (the step a kill interrupted runs again, as
                # the first cycle of any start steps its newest bar); past the data: the last
                steps = BarSchedule(frames).times
                first = steps[min(bisect_left(steps, max(first, resumed)), len(steps) - 1)]
        # BarClock steps exactly the closed 1m bars a backtest steps (a ScaledClock drifts to
        # mid-minute times by however long each cycle took), so replay trades = backtest trades.
        clock: Clock = replay_clock(frames, first, settings.replay_speed)
        if store is not None:
            store.set_state(REPLAY_DATASET_KEY, dataset, clock.now_ms())
            store.set_state(REPLAY_CLOCK_KEY, clock.now_ms(), clock.now_ms())
            clock = RecordingClock(clock, lambda ms: store.set_state(REPLAY_CLOCK_KEY, ms, ms))
        market = ReplayMarketData(frames, clock)
        gaps = sum(len(d.gaps) for d in datas.values())
        replay = {"path": str(settings.replay_dir), "symbols": list(symbols), "speed": settings.replay_speed,
                  "data_start_ms": start, "data_end_ms": end, "clock_start_ms": clock.now_ms(),
                  "gaps": gaps, "dataset_id": dataset["id"], "resumed_from_ms": resumed,
                  "db_path": str(settings.db_path)}
        if resumed is not None:
            log.info("replay resumes on %s at %s (the store's last world time %s)", settings.db_path,
                     _iso(clock.now_ms()), _iso(resumed))
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

        db = paper_db_path(settings)
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


def open_store(settings: Settings) -> Any:
    """The knowledge store at settings.db_path (creating its folder)."""
    from rl.analysis.levels.finder import DEFAULT_WEIGHTS
    from rl.knowledge.store import KnowledgeStore

    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    return KnowledgeStore(settings.db_path, default_weights=DEFAULT_WEIGHTS)


def build_runner(settings: Settings, market: Any, clock: Clock,
                 store: Any | None = None) -> tuple[Any | None, str | None]:
    """The real AgentRunner (on `store` if given), or (None, why) when a piece of the core
    cannot be built."""
    try:
        from rl.agent.runner import AgentRunner
        from rl.paper.exchange import PaperExchange

        if store is None:
            store = open_store(settings)
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


def _store_files(settings: Settings) -> list[Path]:
    """Every file of this mode's store and paper account (SQLite's -wal and -shm included)."""
    out = []
    for db in (settings.db_path, paper_db_path(settings)):
        out += [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return [p for p in out if p.exists()]


def move_store_aside(settings: Settings, now: datetime | None = None) -> list[Path]:
    """Rename the store and the paper account to <name>.reset-<UTC time>.bak (nothing is
    deleted: a reset clicked by mistake can be undone by renaming back). The files must be
    closed. Returns the new paths."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    moved = []
    for path in _store_files(settings):
        target = path.with_name(f"{path.name}.reset-{stamp}.bak")
        path.rename(target)
        moved.append(target)
    return moved


def reset_paper_runner(settings: Settings, market: Any, clock: Clock, runner: Any) -> Any:
    """A new runner on a fresh store and paper account (PAPER_BALANCE), after moving the
    stopped `runner`'s files aside. AgentError when the new one cannot be built."""
    if settings.mode_label != "paper":
        raise AgentError(f"only a paper account can be reset, not {settings.mode_label}")
    if getattr(runner, "running", False):
        raise AgentError("the agent is running: stop it before resetting the paper account")
    if runner is not None:
        runner.store.close()
        runner.exchange.close()
    moved = move_store_aside(settings)
    fresh, note = build_runner(settings, market, clock)
    if fresh is None:
        raise AgentError(f"the fresh paper account could not be built: {note}")
    log.warning("模拟账户已重置，旧文件已移走 / paper account reset, old files moved aside: %s",
                ", ".join(p.name for p in moved) or "-")
    return fresh


def build_world(settings: Settings, replay_symbol: str | None = None) -> World:
    store, datas = None, None
    if settings.replaying:
        # the replay's store first: the clock resumes from it (and the data set picks its path)
        datas = load_replay_frames(settings, replay_symbol is not None)
        settings = settings.with_overrides(symbols=tuple(datas),
                                           db_path=replay_db_path(settings, replay_dataset(datas)))
        try:
            store = open_store(settings)
        except _FIXABLE_BUILD_FAILURES:
            store = None               # build_runner tries again and says why
    else:
        if settings.db_path_is_default and config.LEGACY_DB_PATH.exists() \
                and not mode_db_path(settings).exists():
            log.warning("旧的共用数据库 %s 不再默认使用；要继续使用请设置 DB_PATH / the store all modes "
                        "shared, %s, is no longer the default (each mode has its own now); set "
                        "DB_PATH to keep using it", config.LEGACY_DB_PATH, config.LEGACY_DB_PATH)
        if settings.db_path != mode_db_path(settings):
            settings = settings.with_overrides(db_path=mode_db_path(settings))
    try:
        settings, market, clock, replay = build_market(settings, symbol_given=replay_symbol is not None,
                                                       store=store, datas=datas)
    except BaseException:
        if store is not None:
            store.close()
        raise
    runner, note = build_runner(settings, market, clock, store)
    reset = None
    if settings.mode_label == "paper":
        built = settings

        def reset(old: Any) -> Any:
            return reset_paper_runner(built, market, clock, old)
    return World(settings=settings, market=market, runner=runner, clock=clock,
                 runner_note=note, replay=replay, reset_paper=reset)
