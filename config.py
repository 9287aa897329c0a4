"""One typed, frozen settings object, built once from defaults <- .env <- environment.

Every number the agent uses lives here. `load_settings()` validates each value and raises
`SettingsError` with one line that names the variable, the bad value and the rule, so a
trader who mistyped `.env` learns what to fix instead of reading a traceback.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from rl.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent

MODES = ("paper", "testnet", "live")
ENTRY_ORDERS = ("ioc", "maker")
TAKE_PROFIT_ORDERS = ("market", "maker")
TRADE_FILTER_MODES = ("off", "on")
MAINNET_FAPI = "https://fapi.binance.com"
TESTNET_FAPI = "https://demo-fapi.binance.com"
DEFAULT_TRADE_URL = {"paper": MAINNET_FAPI, "testnet": TESTNET_FAPI, "live": MAINNET_FAPI}
# Binance's USD-M hosts, exactly (a substring test would pass fapi.binance.com.evil.io). The two
# test hosts share one test backend; mainnet is the only host where orders spend real money.
MAINNET_HOST = "fapi.binance.com"
TEST_HOSTS = ("demo-fapi.binance.com", "testnet.binancefuture.com")
BINANCE_HOSTS = (MAINNET_HOST, *TEST_HOSTS)
_HOST_LIST = ", ".join(f"https://{h}" for h in BINANCE_HOSTS)
# The shape web.auth.hash_password writes: scheme:params...:salt:key, base64url without padding.
# Checked here so a plain password pasted into DASHBOARD_PASSWORD_HASH stops start-up.
_PASSWORD_HASH_RE = re.compile(r"^(scrypt:\d+:\d+:\d+|pbkdf2_sha256:\d+):[A-Za-z0-9_-]{16,}:[A-Za-z0-9_-]{32,}$")
LIVE_CONFIRM_PHRASE = "I_UNDERSTAND_REAL_MONEY"
# LIVE_WITHOUT_EVIDENCE: live trading without a profile whose unseen months beat random entries
LIVE_RISK_PHRASE = "I_ACCEPT_THE_RISK"
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}USDT$|^[A-Z0-9]{2,20}USDC$")
PROFILES_DIR = PROJECT_ROOT / "profiles"
# Where the default stores live. Each mode has its own folder, so paper never shows a replay's
# trades or a testnet wallet (and the paper account beside a store is that mode's alone).
STORE_ROOT = PROJECT_ROOT / "data"
# The one store all modes shared before; DB_PATH=data/agent.db (the line older copies of
# .env.example carry) is read as "unset", so those copies get per-mode stores too.
LEGACY_DB_PATH = PROJECT_ROOT / "data" / "agent.db"
_PROFILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Settings:
    """The validated configuration. Secrets are excluded from repr."""

    trading_mode: str = "paper"
    api_key: str = field(default="", repr=False)
    api_secret: str = field(default="", repr=False)
    live_confirm: str = field(default="", repr=False)
    # LIVE_WITHOUT_EVIDENCE=I_ACCEPT_THE_RISK lets live start although the active profile's
    # out-of-sample return does not beat the random-entry median (rl.optimize.evidence)
    live_without_evidence: str = ""
    # salted scrypt hash of the dashboard password (python -m web.auth hash); "" = no login,
    # which web.app allows only on loopback
    dashboard_password_hash: str = field(default="", repr=False)
    market_data_url: str = MAINNET_FAPI
    trade_url: str = MAINNET_FAPI
    symbols: tuple[str, ...] = ("BTCUSDT",)
    leverage: int = 10
    max_risk_percent: float = 2.0
    # notional cap and least net reward of a trade: see rl.strategy.params.TradePlanParams
    max_notional_percent: float = 100.0
    min_reward_r: float = 1.0
    min_trades_for_adjust: int = 30
    check_interval_flat: float = 60.0
    check_interval_position: float = 30.0
    # the knowledge store. Unset (db_path_explicit False): one store per mode, see
    # default_db_path(); replay keys it by its data set (web.world.replay_db_path)
    db_path: Path = LEGACY_DB_PATH
    db_path_explicit: bool = False
    host: str = "127.0.0.1"
    port: int = 5000
    paper_balance: float = 10000.0
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    ioc_offset_bps: float = 5.0
    # how entries go out: "ioc" = LIMIT IOC at the price +- IOC_OFFSET_BPS (taker fee);
    # "maker" = post-only LIMIT (GTX) at the planned price (maker fee), resting for at most
    # entry_timeout_seconds (default: one 15m decision interval, when the agent re-decides)
    entry_order: str = "ioc"
    entry_timeout_seconds: float = 900.0
    # how take-profits go out: "market" = a reduce-only MARKET exit on the bar that reaches
    # the target / partial level (taker fee); "maker" = reduce-only post-only LIMITs (GTX)
    # resting at those prices from the entry on (maker fee; fill only when traded through)
    take_profit_order: str = "market"
    reentry_cooldown_minutes: int = 60
    # risk protections: pauses on new entries after losses (rl.risk; reasons in rl/risk/config.py)
    max_drawdown_percent: float = 10.0
    drawdown_lookback_days: float = 30.0
    daily_loss_limit_percent: float = 4.0
    stoploss_guard_trades: int = 3
    stoploss_guard_window_hours: float = 6.0
    stoploss_guard_pause_hours: float = 8.0
    # exposure caps: what the positions open together may risk (rl.risk.exposure; reasons there)
    max_open_positions: int = 3
    max_total_risk_percent: float = 4.0
    max_correlation: float = 0.8
    # risk multiplier per learning phase (exploration, learning, stable): early trades are for
    # collecting evidence with a low entry bar, so they stake less of MAX_RISK_PERCENT
    phase_risk_scale: tuple[float, float, float] = (0.5, 0.75, 1.0)
    # STRATEGY_PROFILE: an optimizer's result (profiles/NAME.json, written by rl.optimize) whose
    # strategy numbers replace the defaults; "" = none. strategy_overrides: the dotted
    # StrategyParams keys and values it sets, read from the file at load (from_settings
    # applies them, after the numbers above).
    strategy_profile: str = ""
    strategy_overrides: tuple[tuple[str, float], ...] = field(default=(), repr=False)
    # the learned trade filter (rl.strategy.trade_filter, docs/learning.md): "on" lets a model
    # of net R learned from closed trades skip signals and scale stakes; "off" (default) is
    # today's agent. Off by default: on the shared months it beat the frozen agent only by trading
    # less, not by picking better trades (docs/learning.md "Measured")
    trade_filter: str = "off"
    replay_dir: Path | None = None
    replay_speed: float = 60.0
    data_dir: Path = PROJECT_ROOT.parent / "shared" / "data"
    language: str = "zh"
    log_level: str = "INFO"
    request_timeout: float = 30.0

    @property
    def has_keys(self) -> bool:
        return bool(self.api_key and self.api_secret)

    @property
    def replaying(self) -> bool:
        return self.replay_dir is not None

    @property
    def db_path_is_default(self) -> bool:
        """DB_PATH was not chosen: the store is the mode's own (default_db_path), and a replay
        gets one per data set. A path given any way (DB_PATH, --db, a constructor) is kept."""
        return not self.db_path_explicit and self.db_path in (LEGACY_DB_PATH,
                                                             default_db_path(self.trading_mode))

    @property
    def mode_label(self) -> str:
        """What the dashboard badge shows: replay overrides the trading mode (it is paper)."""
        return "replay" if self.replaying else self.trading_mode

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to show in the dashboard / API: never keys or secrets."""
        hidden = {"api_key", "api_secret", "live_confirm", "dashboard_password_hash", "strategy_overrides"}
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in hidden:
                continue
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else (
                list(value) if isinstance(value, tuple) else value)
        out["has_keys"] = self.has_keys
        out["dashboard_login"] = bool(self.dashboard_password_hash)
        out["mode_label"] = self.mode_label
        return out

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (CLI flags), validated like the original."""
        return _validate(replace(self, **changes))


# --- parsing helpers: each returns the parsed value or raises SettingsError naming the var ---

def _fail(name: str, raw: str, rule: str) -> SettingsError:
    return SettingsError(f"{name}={raw!r} is invalid: {rule}")


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise _fail(name, raw, f"{name} must be an integer {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise _fail(name, raw, f"{name} must be an integer {lo}..{hi}")
    return value


def _float(name: str, raw: str, lo: float, hi: float, lo_open: bool = False) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = float("nan")
    bad_lo = value <= lo if lo_open else value < lo
    if value != value or bad_lo or value > hi:
        bound = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise _fail(name, raw, f"{name} must be a number {bound} and <= {hi:g}")
    return value


def _limit_percent(name: str, raw: str) -> float:
    """A protection's percentage: 0 (the rule off) up to, not including, 100."""
    rule = f"{name} must be a number >= 0 and < 100 (0 turns the rule off)"
    try:
        value = float(raw.strip())
    except ValueError:
        raise _fail(name, raw, rule) from None
    if not 0 <= value < 100:          # NaN fails this too
        raise _fail(name, raw, rule)
    return value


def _count_or_off(name: str, raw: str, hi: int) -> int:
    """A count of 0 (the rule off) up to `hi`."""
    rule = f"{name} must be an integer 0..{hi} (0 turns the rule off)"
    try:
        value = int(raw.strip())
    except ValueError:
        raise _fail(name, raw, rule) from None
    if not 0 <= value <= hi:
        raise _fail(name, raw, rule)
    return value


def _correlation(name: str, raw: str) -> float:
    """A correlation threshold: 0 (the rule off) up to 1."""
    rule = f"{name} must be a number >= 0 and <= 1 (0 turns the rule off)"
    try:
        value = float(raw.strip())
    except ValueError:
        raise _fail(name, raw, rule) from None
    if not 0 <= value <= 1:           # NaN fails this too
        raise _fail(name, raw, rule)
    return value


def binance_host(url: str) -> str | None:
    """The host of `url` if it is exactly https://<one of BINANCE_HOSTS>, else None.

    Parsed, not searched: no other scheme, port, user, path, query or fragment, so neither
    https://fapi.binance.com.evil.io nor https://evil.example/binance.com nor http:// passes.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme != "https" or parts.path or parts.query or parts.fragment:
        return None
    host = parts.netloc.lower()
    return host if host in BINANCE_HOSTS else None


def _url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    host = binance_host(value) if re.fullmatch(r"https://[A-Za-z0-9.-]+", value) else None
    if host is None:
        raise _fail(name, raw, f"{name} must be a Binance USDⓈ-M host, exactly one of {_HOST_LIST}")
    return f"https://{host}"


def _password_hash(name: str, raw: str) -> str:
    value = raw.strip()
    if not _PASSWORD_HASH_RE.match(value):
        # the value is not echoed: it may be the password itself
        raise SettingsError(f"{name} is invalid: it must be a hash made by `python -m web.auth hash` "
                            "(never the password itself)")
    return value


def _symbols(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(s.strip().upper() for s in raw.split(",") if s.strip())
    if not items:
        raise _fail(name, raw, f"{name} must list at least one symbol, e.g. BTCUSDT,ETHUSDT")
    for s in items:
        if not _SYMBOL_RE.match(s):
            raise _fail(name, raw, f"{name} entries must be USDⓈ-M perpetual symbols like BTCUSDT ({s!r})")
    if len(set(items)) != len(items):
        raise _fail(name, raw, f"{name} must not repeat a symbol")
    return items


def _risk_scales(name: str, raw: str) -> tuple[float, float, float]:
    rule = f"{name} must be three numbers in (0, 1] for exploration,learning,stable, e.g. 0.5,0.75,1"
    try:
        values = tuple(float(x) for x in raw.split(","))
    except ValueError:
        raise _fail(name, raw, rule) from None
    if len(values) != 3 or not all(0 < v <= 1 for v in values):
        raise _fail(name, raw, rule)
    return values


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise _fail(name, raw, f"{name} must be one of {', '.join(choices)}")
    return value


def _path(name: str, raw: str) -> Path:
    if not raw.strip():
        raise _fail(name, raw, f"{name} must be a file or directory path")
    p = Path(raw.strip()).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p)


def default_db_path(mode: str, root: Path | None = None) -> Path:
    """The store a mode uses when DB_PATH is unset: <root>/<mode>/agent.db (root: STORE_ROOT,
    read at call time so tests can point it elsewhere)."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is invalid: it must be one of {', '.join(MODES)}")
    return (root if root is not None else STORE_ROOT) / mode / "agent.db"


def profile_path(name: str) -> Path:
    """Where the profile named `name` lives: profiles/NAME.json, or `name` itself when it is
    a path to a .json file."""
    raw = name.strip()
    if raw.endswith(".json"):
        p = Path(raw).expanduser()
        return p if p.is_absolute() else Path.cwd() / p
    return PROFILES_DIR / f"{raw}.json"


def read_profile(name: str, var: str = "STRATEGY_PROFILE") -> tuple[tuple[str, float], ...]:
    """The strategy overrides of the profile `name` (its "params": dotted StrategyParams key ->
    number), or SettingsError naming `var` and what is wrong. Whether each key exists and each
    value is within its rule is checked by StrategyParams.from_settings (rl.strategy.params)."""
    raw = name.strip()
    if not raw.endswith(".json") and not _PROFILE_NAME_RE.match(raw):
        raise _fail(var, name, f"{var} must be a profile name (letters, digits, _ . -) or a .json path")
    path = profile_path(raw)
    if not path.is_file():
        raise _fail(var, name, f"no profile file {path} (write one with python -m rl.optimize --study NAME)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _fail(var, name, f"profile {path} is not readable JSON ({exc})") from None
    params = doc.get("params") if isinstance(doc, dict) else None
    if not isinstance(params, dict) or not params:
        raise _fail(var, name, f"profile {path} has no \"params\" object of strategy numbers")
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _fail(var, name, f"profile {path}: params[{key!r}]={value!r} is not a finite number")
    return tuple((str(k), v) for k, v in params.items())


# variable name -> (field name, parser)
_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "TRADING_MODE": ("trading_mode", lambda n, r: _choice(n, r, MODES)),
    "API_KEY": ("api_key", lambda n, r: r.strip()),
    "API_SECRET": ("api_secret", lambda n, r: r.strip()),
    "LIVE_TRADING_CONFIRM": ("live_confirm", lambda n, r: r.strip()),
    "LIVE_WITHOUT_EVIDENCE": ("live_without_evidence", lambda n, r: _choice(n, r, (LIVE_RISK_PHRASE.lower(),)).upper()),
    "DASHBOARD_PASSWORD_HASH": ("dashboard_password_hash", _password_hash),
    "MARKET_DATA_URL": ("market_data_url", _url),
    "TRADE_URL": ("trade_url", _url),
    "SYMBOLS": ("symbols", _symbols),
    "LEVERAGE": ("leverage", lambda n, r: _int(n, r, 1, 125)),
    "MAX_RISK_PERCENT": ("max_risk_percent", lambda n, r: _float(n, r, 0.01, 10.0)),
    "MAX_NOTIONAL_PERCENT": ("max_notional_percent", lambda n, r: _float(n, r, 1.0, 12500.0)),
    "MIN_REWARD_R": ("min_reward_r", lambda n, r: _float(n, r, 0.0, 20.0, lo_open=True)),
    "MIN_TRADES_FOR_ADJUST": ("min_trades_for_adjust", lambda n, r: _int(n, r, 1, 100000)),
    "CHECK_INTERVAL_FLAT": ("check_interval_flat", lambda n, r: _float(n, r, 1.0, 86400.0)),
    "CHECK_INTERVAL_POSITION": ("check_interval_position", lambda n, r: _float(n, r, 1.0, 86400.0)),
    "DB_PATH": ("db_path", _path),
    "HOST": ("host", lambda n, r: r.strip() or "127.0.0.1"),
    "PORT": ("port", lambda n, r: _int(n, r, 1, 65535)),
    "PAPER_BALANCE": ("paper_balance", lambda n, r: _float(n, r, 0.0, 1e12, lo_open=True)),
    "MAKER_FEE": ("maker_fee", lambda n, r: _float(n, r, -0.01, 0.01)),
    "TAKER_FEE": ("taker_fee", lambda n, r: _float(n, r, 0.0, 0.01)),
    "IOC_OFFSET_BPS": ("ioc_offset_bps", lambda n, r: _float(n, r, 0.0, 500.0)),
    "ENTRY_ORDER": ("entry_order", lambda n, r: _choice(n, r, ENTRY_ORDERS)),
    "TAKE_PROFIT_ORDER": ("take_profit_order", lambda n, r: _choice(n, r, TAKE_PROFIT_ORDERS)),
    "ENTRY_TIMEOUT_SECONDS": ("entry_timeout_seconds", lambda n, r: _float(n, r, 60.0, 86400.0)),
    "REENTRY_COOLDOWN_MINUTES": ("reentry_cooldown_minutes", lambda n, r: _int(n, r, 0, 10080)),
    "PHASE_RISK_SCALE": ("phase_risk_scale", _risk_scales),
    "TRADE_FILTER": ("trade_filter", lambda n, r: _choice(n, r, TRADE_FILTER_MODES)),
    "MAX_DRAWDOWN_PERCENT": ("max_drawdown_percent", _limit_percent),
    "DRAWDOWN_LOOKBACK_DAYS": ("drawdown_lookback_days", lambda n, r: _float(n, r, 1.0, 365.0)),
    "DAILY_LOSS_LIMIT_PERCENT": ("daily_loss_limit_percent", _limit_percent),
    "STOPLOSS_GUARD_TRADES": ("stoploss_guard_trades", lambda n, r: _count_or_off(n, r, 1000)),
    "STOPLOSS_GUARD_WINDOW_HOURS": ("stoploss_guard_window_hours",
                                    lambda n, r: _float(n, r, 0.0, 720.0, lo_open=True)),
    "STOPLOSS_GUARD_PAUSE_HOURS": ("stoploss_guard_pause_hours",
                                   lambda n, r: _float(n, r, 0.0, 720.0, lo_open=True)),
    "MAX_OPEN_POSITIONS": ("max_open_positions", lambda n, r: _count_or_off(n, r, 1000)),
    "MAX_TOTAL_RISK_PERCENT": ("max_total_risk_percent", _limit_percent),
    "MAX_CORRELATION": ("max_correlation", _correlation),
    "STRATEGY_PROFILE": ("strategy_profile", lambda n, r: r.strip()),
    "REPLAY_DIR": ("replay_dir", _path),
    "REPLAY_SPEED": ("replay_speed", lambda n, r: _float(n, r, 0.0, 1e9, lo_open=True)),
    "BINANCE_DATA_DIR": ("data_dir", _path),
    "LANGUAGE": ("language", lambda n, r: _choice(n, r, ("zh", "en"))),
    "LOG_LEVEL": ("log_level", lambda n, r: _choice(n, r, ("debug", "info", "warning", "error")).upper()),
    "REQUEST_TIMEOUT": ("request_timeout", lambda n, r: _float(n, r, 1.0, 120.0)),
}


def _validate(s: Settings) -> Settings:
    """Rules that involve more than one field."""
    if s.trading_mode in ("testnet", "live") and not s.has_keys:
        raise SettingsError(
            f"TRADING_MODE={s.trading_mode!r} needs API_KEY and API_SECRET: set both in .env, "
            "or use TRADING_MODE=paper (no keys needed)")
    if s.trading_mode == "live" and s.live_confirm != LIVE_CONFIRM_PHRASE:
        raise SettingsError(
            "TRADING_MODE='live' trades real money and refuses to start: set "
            f"LIVE_TRADING_CONFIRM={LIVE_CONFIRM_PHRASE} in .env if you really mean it")
    _check_live_evidence(s)
    _check_hosts(s)
    if s.check_interval_position > s.check_interval_flat:
        raise SettingsError(
            f"CHECK_INTERVAL_POSITION={s.check_interval_position:g} is invalid: it must not be "
            f"longer than CHECK_INTERVAL_FLAT={s.check_interval_flat:g}")
    if s.entry_order not in ENTRY_ORDERS:
        raise SettingsError(f"ENTRY_ORDER={s.entry_order!r} is invalid: ENTRY_ORDER must be one of "
                            f"{', '.join(ENTRY_ORDERS)}")
    if s.take_profit_order not in TAKE_PROFIT_ORDERS:
        raise SettingsError(f"TAKE_PROFIT_ORDER={s.take_profit_order!r} is invalid: TAKE_PROFIT_ORDER must "
                            f"be one of {', '.join(TAKE_PROFIT_ORDERS)}")
    if not 60.0 <= s.entry_timeout_seconds <= 86400.0:
        raise SettingsError(f"ENTRY_TIMEOUT_SECONDS={s.entry_timeout_seconds!r} is invalid: "
                            "ENTRY_TIMEOUT_SECONDS must be a number >= 60 and <= 86400")
    if s.trade_filter not in TRADE_FILTER_MODES:
        raise SettingsError(f"TRADE_FILTER={s.trade_filter!r} is invalid: TRADE_FILTER must be one of "
                            f"{', '.join(TRADE_FILTER_MODES)}")
    if 0 < s.max_total_risk_percent < s.max_risk_percent:
        raise SettingsError(f"MAX_TOTAL_RISK_PERCENT={s.max_total_risk_percent:g} is invalid: it must be 0 "
                            f"(off) or at least MAX_RISK_PERCENT={s.max_risk_percent:g} (one full-risk "
                            "trade must fit)")
    if s.maker_fee > s.taker_fee:
        raise SettingsError(f"MAKER_FEE={s.maker_fee:g} is invalid: it must not exceed TAKER_FEE={s.taker_fee:g}")
    return s


def _check_live_evidence(s: Settings) -> None:
    """Live trading starts only on a profile whose stitched out-of-sample return beats the
    random-entry median, unless the trader accepts the risk (paper and testnet: no gate)."""
    if s.trading_mode != "live" or s.live_without_evidence == LIVE_RISK_PHRASE:
        return
    from rl.optimize.evidence import live_gate, read_doc  # late: config is imported by rl/
    doc = read_doc(profile_path(s.strategy_profile)) if s.strategy_profile else None
    reason = live_gate(doc, s.strategy_profile)
    if reason is not None:
        raise SettingsError(reason)


def _check_hosts(s: Settings) -> None:
    """Orders go where the mode says: live only to mainnet, testnet only to a test host."""
    if binance_host(s.market_data_url) is None:
        raise SettingsError(f"MARKET_DATA_URL={s.market_data_url!r} is invalid: MARKET_DATA_URL must "
                            f"be a Binance USDⓈ-M host, exactly one of {_HOST_LIST}")
    host = binance_host(s.trade_url)
    if s.trading_mode == "live" and host != MAINNET_HOST:
        raise SettingsError(f"TRADE_URL={s.trade_url!r} is invalid: TRADING_MODE=live trades only "
                            f"on {MAINNET_FAPI}")
    if s.trading_mode == "testnet" and host not in TEST_HOSTS:
        tests = " or ".join(f"https://{h}" for h in TEST_HOSTS)
        why = (" is Binance's real-money host" if host == MAINNET_HOST else " is invalid") + \
            f": TRADING_MODE=testnet trades only on {tests}"
        if host == MAINNET_HOST:
            why += f" (real money needs TRADING_MODE=live and LIVE_TRADING_CONFIRM={LIVE_CONFIRM_PHRASE})"
        raise SettingsError(f"TRADE_URL={s.trade_url!r}{why}")
    if host is None:
        raise SettingsError(f"TRADE_URL={s.trade_url!r} is invalid: TRADE_URL must be a Binance "
                            f"USDⓈ-M host, exactly one of {_HOST_LIST}")


def load_settings(environ: Mapping[str, str] | None = None,
                  dotenv_path: str | Path | None = None) -> Settings:
    """Defaults <- .env file <- environment (environment wins). Raises SettingsError."""
    env_file = Path(dotenv_path) if dotenv_path is not None else PROJECT_ROOT / ".env"
    merged: dict[str, str] = {}
    if env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    if merged.get("DASHBOARD_PASSWORD"):
        raise SettingsError("DASHBOARD_PASSWORD is not read: a plain password must not sit in .env; "
                            "put its hash in DASHBOARD_PASSWORD_HASH (make it with "
                            "`python -m web.auth hash`) and delete DASHBOARD_PASSWORD")

    values: dict[str, Any] = {}
    for var, (attr, parse) in _PARSERS.items():
        raw = merged.get(var)
        if raw is None or (raw.strip() == "" and var not in ("HOST",)):
            continue
        values[attr] = parse(var, raw)
    if values.get("strategy_profile"):
        values["strategy_overrides"] = read_profile(values["strategy_profile"])
    mode = values.get("trading_mode", "paper")
    values.setdefault("trade_url", DEFAULT_TRADE_URL[mode])
    if "db_path" in values and values["db_path"] != LEGACY_DB_PATH:
        values["db_path_explicit"] = True
    else:
        values["db_path"] = default_db_path(mode)
    return _validate(Settings(**values))
