"""Settings: defaults, precedence, and one clear line for each invalid value."""
from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

import config
from config import load_settings
from rl.errors import SettingsError

NO_FILE = "/nonexistent/.env"


def load(**env: str) -> config.Settings:
    return load_settings(env, dotenv_path=NO_FILE)


def test_defaults_are_paper_on_mainnet_data() -> None:
    s = load()
    assert s.trading_mode == "paper"
    assert s.market_data_url == "https://fapi.binance.com"
    assert s.symbols == ("BTCUSDT",)
    assert (s.leverage, s.max_risk_percent, s.min_trades_for_adjust) == (10, 2.0, 30)
    assert (s.check_interval_flat, s.check_interval_position) == (60.0, 30.0)
    assert (s.host, s.port, s.paper_balance) == ("127.0.0.1", 5000, 10000.0)
    assert (s.maker_fee, s.taker_fee) == (0.0002, 0.0005)
    assert s.replay_dir is None and s.mode_label == "paper"


def test_testnet_defaults_to_demo_host() -> None:
    s = load(TRADING_MODE="testnet", API_KEY="k" * 64, API_SECRET="s" * 64)
    assert s.trade_url == "https://demo-fapi.binance.com"
    assert s.has_keys


def test_environment_overrides_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LEVERAGE=5\nSYMBOLS=ethusdt, btcusdt\nPORT=5050\n", encoding="utf-8")
    s = load_settings({"LEVERAGE": "7"}, dotenv_path=env_file)
    assert s.leverage == 7          # environment wins
    assert s.symbols == ("ETHUSDT", "BTCUSDT")   # .env used, normalised
    assert s.port == 5050


@pytest.mark.parametrize("var, value, fragment", [
    ("LEVERAGE", "200", "LEVERAGE must be an integer 1..125"),
    ("LEVERAGE", "ten", "LEVERAGE must be an integer 1..125"),
    ("TRADING_MODE", "real", "TRADING_MODE must be one of paper, testnet, live"),
    ("MAX_RISK_PERCENT", "0", "MAX_RISK_PERCENT must be a number >= 0.01 and <= 10"),
    ("MAX_RISK_PERCENT", "100", "MAX_RISK_PERCENT must be a number >= 0.01 and <= 10"),
    ("MAX_RISK_PERCENT", "1e-300", "MAX_RISK_PERCENT must be a number >= 0.01 and <= 10"),
    ("MAX_NOTIONAL_PERCENT", "0", "MAX_NOTIONAL_PERCENT must be a number >= 1"),
    ("MIN_REWARD_R", "-1", "MIN_REWARD_R must be a number > 0"),
    # 0 would accept a target at the entry price: an exit labelled take-profit that loses the fees
    ("MIN_REWARD_R", "0", "MIN_REWARD_R must be a number > 0 and <= 20"),
    ("MAX_RISK_PERCENT", "abc", "MAX_RISK_PERCENT must be a number"),
    ("PORT", "70000", "PORT must be an integer 1..65535"),
    ("SYMBOLS", "BTC-USDT", "SYMBOLS entries must be USDⓈ-M perpetual symbols"),
    ("SYMBOLS", ",", "SYMBOLS must list at least one symbol"),
    ("SYMBOLS", "BTCUSDT,BTCUSDT", "SYMBOLS must not repeat a symbol"),
    ("MARKET_DATA_URL", "fapi.binance.com", "MARKET_DATA_URL must be a Binance USDⓈ-M host"),
    ("MARKET_DATA_URL", "http://127.0.0.1:9999", "MARKET_DATA_URL must be a Binance USDⓈ-M host"),
    ("MARKET_DATA_URL", "https://fapi.binance.com.evil.io", "MARKET_DATA_URL must be a Binance USDⓈ-M host"),
    ("TRADE_URL", "https://evil.example/binance.com", "TRADE_URL must be a Binance USDⓈ-M host"),
    ("MIN_TRADES_FOR_ADJUST", "0", "MIN_TRADES_FOR_ADJUST must be an integer 1..100000"),
    ("CHECK_INTERVAL_FLAT", "0.1", "CHECK_INTERVAL_FLAT must be a number >= 1"),
    ("PAPER_BALANCE", "-5", "PAPER_BALANCE must be a number > 0"),
    ("TAKER_FEE", "0.5", "TAKER_FEE must be a number >= 0 and <= 0.01"),
    ("REPLAY_SPEED", "0", "REPLAY_SPEED must be a number > 0"),
    ("LANGUAGE", "fr", "LANGUAGE must be one of zh, en"),
    ("MAX_DRAWDOWN_PERCENT", "-1", "MAX_DRAWDOWN_PERCENT must be a number >= 0 and < 100 (0 turns the rule off)"),
    ("MAX_DRAWDOWN_PERCENT", "100", "MAX_DRAWDOWN_PERCENT must be a number >= 0 and < 100"),
    ("MAX_DRAWDOWN_PERCENT", "nan", "MAX_DRAWDOWN_PERCENT must be a number >= 0 and < 100"),
    ("MAX_DRAWDOWN_PERCENT", "ten", "MAX_DRAWDOWN_PERCENT must be a number >= 0 and < 100"),
    ("DRAWDOWN_LOOKBACK_DAYS", "0.5", "DRAWDOWN_LOOKBACK_DAYS must be a number >= 1 and <= 365"),
    ("DRAWDOWN_LOOKBACK_DAYS", "400", "DRAWDOWN_LOOKBACK_DAYS must be a number >= 1 and <= 365"),
    ("DAILY_LOSS_LIMIT_PERCENT", "-0.1", "DAILY_LOSS_LIMIT_PERCENT must be a number >= 0 and < 100 (0 turns"),
    ("DAILY_LOSS_LIMIT_PERCENT", "inf", "DAILY_LOSS_LIMIT_PERCENT must be a number >= 0 and < 100"),
    ("STOPLOSS_GUARD_TRADES", "2.5", "STOPLOSS_GUARD_TRADES must be an integer 0..1000 (0 turns the rule off)"),
    ("STOPLOSS_GUARD_TRADES", "-1", "STOPLOSS_GUARD_TRADES must be an integer 0..1000"),
    ("STOPLOSS_GUARD_TRADES", "1001", "STOPLOSS_GUARD_TRADES must be an integer 0..1000"),
    ("STOPLOSS_GUARD_WINDOW_HOURS", "0", "STOPLOSS_GUARD_WINDOW_HOURS must be a number > 0 and <= 720"),
    ("STOPLOSS_GUARD_WINDOW_HOURS", "721", "STOPLOSS_GUARD_WINDOW_HOURS must be a number > 0 and <= 720"),
    ("STOPLOSS_GUARD_PAUSE_HOURS", "-8", "STOPLOSS_GUARD_PAUSE_HOURS must be a number > 0 and <= 720"),
    ("STOPLOSS_GUARD_PAUSE_HOURS", "eight", "STOPLOSS_GUARD_PAUSE_HOURS must be a number > 0 and <= 720"),
])
def test_each_rule_names_variable_value_and_rule(var: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as err:
        load(**{var: value})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{var}={value!r} is invalid")
    assert fragment in message


def test_cross_field_rules() -> None:
    with pytest.raises(SettingsError, match="CHECK_INTERVAL_POSITION=90 is invalid"):
        load(CHECK_INTERVAL_POSITION="90")
    with pytest.raises(SettingsError, match="MAKER_FEE=0.001 is invalid"):
        load(MAKER_FEE="0.001", TAKER_FEE="0.0005")


def test_testnet_without_keys_is_refused() -> None:
    with pytest.raises(SettingsError, match="needs API_KEY and API_SECRET"):
        load(TRADING_MODE="testnet")


def test_live_requires_explicit_confirmation() -> None:
    keys = {"API_KEY": "k" * 64, "API_SECRET": "s" * 64}
    with pytest.raises(SettingsError, match="LIVE_TRADING_CONFIRM=I_UNDERSTAND_REAL_MONEY"):
        load(TRADING_MODE="live", **keys)
    with pytest.raises(SettingsError, match="refuses to start"):
        load(TRADING_MODE="live", LIVE_TRADING_CONFIRM="yes", **keys)
    s = load(TRADING_MODE="live", LIVE_TRADING_CONFIRM=config.LIVE_CONFIRM_PHRASE,
             LIVE_WITHOUT_EVIDENCE=config.LIVE_RISK_PHRASE, **keys)
    assert s.trade_url == "https://fapi.binance.com"


def test_secrets_never_in_repr_or_public_dict() -> None:
    key, secret = "AKEY" + "x" * 60, "SECRET" + "y" * 58
    s = load(TRADING_MODE="testnet", API_KEY=key, API_SECRET=secret)
    for text in (repr(s), str(s), str(s.public_dict())):
        assert key not in text and secret not in text
    assert s.public_dict()["has_keys"] is True


def test_settings_are_frozen_and_overrides_revalidate() -> None:
    s = load()
    with pytest.raises(FrozenInstanceError):
        s.leverage = 20  # type: ignore[misc]
    assert s.with_overrides(port=5123).port == 5123
    with pytest.raises(SettingsError):
        s.with_overrides(check_interval_position=120.0)


def test_relative_paths_resolve_against_project_root() -> None:
    s = load(DB_PATH="data/x.db", REPLAY_DIR="../shared/data")
    assert s.db_path == config.PROJECT_ROOT / "data" / "x.db"
    assert s.replay_dir is not None and s.mode_label == "replay"


def test_risk_rule_settings() -> None:
    s = load(REENTRY_COOLDOWN_MINUTES="15", PHASE_RISK_SCALE="0.25, 0.5, 1")
    assert s.reentry_cooldown_minutes == 15 and s.phase_risk_scale == (0.25, 0.5, 1.0)
    with pytest.raises(SettingsError, match="PHASE_RISK_SCALE must be three numbers in"):
        load(PHASE_RISK_SCALE="0.5,2,1")
    with pytest.raises(SettingsError, match="REENTRY_COOLDOWN_MINUTES must be an integer 0..10080"):
        load(REENTRY_COOLDOWN_MINUTES="-1")


def test_protection_settings_default_and_zero_turns_a_rule_off() -> None:
    s = load()
    assert (s.max_drawdown_percent, s.drawdown_lookback_days, s.daily_loss_limit_percent) == (10.0, 30.0, 4.0)
    assert (s.stoploss_guard_trades, s.stoploss_guard_window_hours, s.stoploss_guard_pause_hours) == (3, 6.0, 8.0)
    off = load(MAX_DRAWDOWN_PERCENT="0", DAILY_LOSS_LIMIT_PERCENT="0", STOPLOSS_GUARD_TRADES="0",
               DRAWDOWN_LOOKBACK_DAYS="7", STOPLOSS_GUARD_WINDOW_HOURS="2.5", STOPLOSS_GUARD_PAUSE_HOURS="24")
    assert (off.max_drawdown_percent, off.daily_loss_limit_percent, off.stoploss_guard_trades) == (0.0, 0.0, 0)
    assert (off.drawdown_lookback_days, off.stoploss_guard_window_hours, off.stoploss_guard_pause_hours) == (7.0, 2.5, 24.0)
    assert off.public_dict()["max_drawdown_percent"] == 0.0       # shown in the dashboard's settings


# ---- item 4 of issue 13: orders go only where the mode says -------------------------------
KEYS = {"API_KEY": "k" * 64, "API_SECRET": "s" * 64}
# the evidence gate (tests/config/test_live_gate.py) is passed here: these tests are about hosts
LIVE = {"TRADING_MODE": "live", "LIVE_TRADING_CONFIRM": config.LIVE_CONFIRM_PHRASE,
        "LIVE_WITHOUT_EVIDENCE": config.LIVE_RISK_PHRASE, **KEYS}
NOT_MAINNET = [
    "https://fapi.binance.com.evil.io",     # passed the old substring test
    "https://evil.example/binance.com",
    "http://fapi.binance.com",              # keys and orders in clear text
    "https://fapi.binance.com:8443",
    "https://user@fapi.binance.com",
    "https://fapi.binance.com/fapi",
    "https://fapi.binance.com?x=1",
    "https://demo-fapi.binance.com",        # a test host: live means mainnet
    "http://127.0.0.1:8080",
]


@pytest.mark.parametrize("url", NOT_MAINNET)
def test_live_trades_only_on_the_mainnet_host(url: str) -> None:
    with pytest.raises(SettingsError) as err:
        load(TRADE_URL=url, **LIVE)
    assert "\n" not in str(err.value) and str(err.value).startswith("TRADE_URL=")


def test_testnet_refuses_the_real_money_host() -> None:
    for url in ("https://fapi.binance.com", "https://FAPI.binance.com/"):
        with pytest.raises(SettingsError, match="real-money host: TRADING_MODE=testnet trades only on"):
            load(TRADING_MODE="testnet", TRADE_URL=url, **KEYS)


@pytest.mark.parametrize("url", ["https://demo-fapi.binance.com.evil.io", "http://demo-fapi.binance.com",
                                 "http://127.0.0.1:8080", "https://evil.example/demo-fapi.binance.com"])
def test_testnet_refuses_other_hosts(url: str) -> None:
    with pytest.raises(SettingsError, match="^TRADE_URL="):
        load(TRADING_MODE="testnet", TRADE_URL=url, **KEYS)


def test_binance_hosts_accepted_per_mode() -> None:
    assert load(**LIVE).trade_url == "https://fapi.binance.com"
    assert load(TRADE_URL="https://fapi.binance.com/", **LIVE).trade_url == "https://fapi.binance.com"
    for host in ("https://demo-fapi.binance.com", "https://testnet.binancefuture.com"):
        assert load(TRADING_MODE="testnet", TRADE_URL=host, **KEYS).trade_url == host
        assert load(MARKET_DATA_URL=host).market_data_url == host
        assert load(TRADE_URL=host).trade_url == host           # paper reads filters anywhere


def test_overrides_recheck_the_hosts() -> None:
    with pytest.raises(SettingsError, match="TRADING_MODE=testnet trades only on"):
        load(TRADING_MODE="testnet", **KEYS).with_overrides(trade_url="https://fapi.binance.com")
    with pytest.raises(SettingsError, match="MARKET_DATA_URL="):
        load().with_overrides(market_data_url="http://127.0.0.1:1")


# ---- item 5: the dashboard password is stored hashed, never plain ---------------------------
A_HASH = "scrypt:16384:8:1:" + "A" * 22 + ":" + "B" * 43


def test_dashboard_password_hash_is_kept_out_of_repr_and_public_dict() -> None:
    s = load(DASHBOARD_PASSWORD_HASH=A_HASH)
    assert s.dashboard_password_hash == A_HASH
    assert A_HASH not in repr(s) and A_HASH not in str(s.public_dict())
    assert s.public_dict()["dashboard_login"] is True and load().public_dict()["dashboard_login"] is False


def test_a_plain_password_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as err:
        load(DASHBOARD_PASSWORD_HASH="hunter2-correct-horse")
    assert "python -m web.auth hash" in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(SettingsError, match="DASHBOARD_PASSWORD is not read") as err:
        load(DASHBOARD_PASSWORD="hunter2-correct-horse")
    assert "hunter2" not in str(err.value)
