"""The account's modes are verified before the agent enters (issue #13 item 7): the real agent
over BinanceExchange, with Binance mocked over HTTP (tests/support/fake_binance.py, the docs'
payloads for positionSide/dual, multiAssetsMargin, symbolConfig, leverage and marginType).

Hedge mode refuses entries and leaves the trader's legs and stops alone (no reconcile cancel);
a flat symbol's margin type and leverage are fixed and verified by reading them again; a
mismatch that cannot be fixed (multi-assets mode) refuses entries, logged once in both
languages and shown in /api/agent/status, until a re-check finds it gone."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import responses

from client import BinanceClient, BinanceError
from config import Settings
from rl.agent.agent import TradingAgent
from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.clock import ManualClock
from rl.execution.binance import BinanceExchange
from rl.knowledge.store import KnowledgeStore
from rl.market.ports import ReplayMarketData
from tests.support.fake_binance import BASE, SYM, FakeBinance
from tests.support.scripted_world import MIN, T0, Script, ScriptedAnalyzer, candles

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


class BinanceWorld:
    """TradingAgent (scripted analysis, replayed 1m candles at 100) over BinanceExchange over
    FakeBinance; the testnet settings at LEVERAGE=10."""

    def __init__(self, tmp_path, rs: responses.RequestsMock, bars: int = 400) -> None:
        self.fake = FakeBinance(rs, price=100.0)
        self.fake.serve_account(rs)
        self.script = Script()
        self.clock = ManualClock(T0 + 60 * MIN)
        self.market = ReplayMarketData({SYM: candles([100.0] * bars)}, self.clock)
        client = BinanceClient(trade_url=BASE, api_key="k", api_secret="s", sleep=lambda s: None)
        self.exchange = BinanceExchange(client, name="testnet")
        self.settings = Settings(trading_mode="testnet", api_key="k", api_secret="s", trade_url=BASE,
                                 db_path=tmp_path / "agent.db", reentry_cooldown_minutes=0, leverage=10,
                                 entry_order="ioc", take_profit_order="market")
        self.store = KnowledgeStore(tmp_path / "agent.db", default_weights=DEFAULT_WEIGHTS)
        self.agent = TradingAgent(self.settings, self.market, self.exchange, self.store, self.clock,
                                  analyzer_factory=lambda sym, w: ScriptedAnalyzer(self.script, sym, w))

    def cycle(self, n: int = 1) -> None:
        for _ in range(n):
            self.agent.run_cycle()
            self.clock.advance(60)

    def signal(self) -> None:
        """A long signal decided at the next 15m close."""
        self.script.long = 60.0
        self.cycle()
        while (self.clock.now_ms() - T0) % (15 * MIN):
            self.cycle()

    def lines(self, level: str | None = None) -> list[dict]:
        return [ln for ln in self.store.decisions.recent(1000) if level is None or ln["level"] == level]


def sent(rs: responses.RequestsMock, method: str, path: str) -> int:
    return sum(1 for c in rs.calls if c.request.method == method and urlsplit(c.request.url).path == path)


def user_stop(fake: FakeBinance, cid: str, side: str, position_side: str, trigger: float) -> None:
    """A conditional order the trader placed (GET /fapi/v1/openAlgoOrders shape)."""
    fake.algos[cid] = {"algoId": 77, "clientAlgoId": cid, "algoType": "CONDITIONAL",
                       "orderType": "STOP_MARKET", "symbol": SYM, "side": side,
                       "positionSide": position_side, "timeInForce": "GTC", "quantity": "0.500",
                       "algoStatus": "NEW", "triggerPrice": f"{trigger}", "price": "0.00",
                       "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
                       "workingType": "MARK_PRICE", "priceMatch": "NONE", "closePosition": False,
                       "priceProtect": False, "reduceOnly": False, "activatePrice": "",
                       "callbackRate": "", "createTime": 1750485492076, "updateTime": 1750485492076,
                       "triggerTime": 0, "goodTillDate": 0}


def test_hedge_mode_refuses_entries_and_never_touches_the_traders_legs_or_stops(tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        w = BinanceWorld(tmp_path, rs)
        w.fake.dual_side = True
        w.fake.hedge_legs = [FakeBinance.hedge_leg("LONG", 0.5, 98.0, 100.0),
                             FakeBinance.hedge_leg("SHORT", -0.5, 102.0, 100.0)]
        user_stop(w.fake, "mine-long", "SELL", "LONG", 95.0)
        user_stop(w.fake, "mine-short", "BUY", "SHORT", 105.0)
        w.agent.startup()
        w.signal()
        w.signal()
        assert sent(rs, "POST", "/fapi/v1/order") == 0                  # no entry
        assert sent(rs, "DELETE", "/fapi/v1/algoOrder") == 0            # the trader's stops stay
        assert set(w.fake.algos) == {"mine-long", "mine-short"}
        assert sent(rs, "POST", "/fapi/v1/leverage") == sent(rs, "POST", "/fapi/v1/marginType") == 0
        assert w.store.open_trade_for(SYM) is None                      # nothing adopted
        status = w.agent.status()["account_mode"]
        assert status["ok"] is False and status["hedge_mode"] is True
        assert [p["kind"] for p in status["problems"]] == ["hedge_mode"]
        warnings = w.lines("WARNING")
        mode = [ln for ln in warnings if ln["message_en"].startswith("⛔ account mode mismatch")]
        refused = [ln for ln in warnings if ln["message_en"].startswith("entry signal not taken")]
        assert len(mode) == 1 and "hedge mode" in mode[0]["message_en"] and "双向持仓" in mode[0]["message_zh"]
        assert len(refused) == 1 and "双向持仓" in refused[0]["message_zh"]    # two signals, one line
        for ln in mode + refused:
            assert not CJK.search(ln["message_en"])
        w.store.close()


def test_a_hedge_leg_is_not_read_as_flat(tmp_path):
    """Even before (or without) the mode check, reading a hedge-mode leg raises instead of
    answering "flat", so a reconcile cannot cancel the stop that protects it."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        w = BinanceWorld(tmp_path, rs)
        w.fake.dual_side = True
        w.fake.hedge_legs = [FakeBinance.hedge_leg("LONG", 0.5, 98.0, 100.0)]
        user_stop(w.fake, "mine-long", "SELL", "LONG", 95.0)
        with pytest.raises(BinanceError, match="hedge-mode positions"):
            w.agent.reconciler.sync(SYM, w.agent._rt[SYM], w.clock.now_ms())
        assert sent(rs, "DELETE", "/fapi/v1/algoOrder") == 0 and "mine-long" in w.fake.algos
        assert w.store.open_trade_for(SYM) is None
        w.store.close()


def test_flat_symbol_margin_type_and_leverage_are_fixed_then_entries_go(tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        w = BinanceWorld(tmp_path, rs)
        w.fake.symbol_cfg = {"marginType": "CROSSED", "leverage": 20}
        w.agent.startup()
        assert w.fake.config_changes[:2] == [("marginType", "ISOLATED"), ("leverage", "10")]
        status = w.agent.status()["account_mode"]
        assert status["ok"] is True
        assert status["symbols"][SYM] == {"margin_type": "ISOLATED", "leverage": 10}   # read again
        fixed = [ln["message_en"] for ln in w.lines("INFO") if ln["message_en"].startswith("account setting fixed")]
        assert fixed == [f"account setting fixed: {SYM}: leverage 20x -> 10x",
                         f"account setting fixed: {SYM}: margin type CROSSED -> ISOLATED"]
        w.signal()
        assert sent(rs, "POST", "/fapi/v1/order") == 1 and len(w.fake.algos) == 1   # entry + its stop
        assert w.store.open_trade_for(SYM) is not None
        w.store.close()


def test_unfixable_mismatch_refuses_entries_until_a_recheck_finds_it_gone(tmp_path):
    """Multi-assets mode (cross margin only): the margin type cannot be made isolated, so no
    entry, one log line; once the trader switches to single-asset mode, the re-check at a later
    signal fixes the margin type and the entry goes out."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        w = BinanceWorld(tmp_path, rs)
        w.fake.multi_assets = True
        w.fake.symbol_cfg = {"marginType": "CROSSED", "leverage": 10}
        w.agent.startup()
        w.signal()
        w.signal()
        assert sent(rs, "POST", "/fapi/v1/order") == 0
        status = w.agent.status()["account_mode"]
        assert {p["kind"] for p in status["problems"]} == {"multi_assets", "margin_type"}
        refused = [ln for ln in w.lines("WARNING") if ln["message_en"].startswith("entry signal not taken")]
        assert len(refused) == 1 and "multi-assets" in refused[0]["message_en"]
        assert "联合保证金" in refused[0]["message_zh"]
        w.fake.multi_assets = False                   # the trader fixes the account
        w.clock.advance(15 * 60)                      # the re-check interval (MODE_RECHECK_MS)
        w.signal()
        assert ("marginType", "ISOLATED") in w.fake.config_changes
        assert w.agent.status()["account_mode"]["ok"] is True
        assert sent(rs, "POST", "/fapi/v1/order") == 1
        assert any(ln["message_en"].startswith("account modes verified") for ln in w.lines("INFO"))
        w.store.close()


def test_open_position_leverage_is_left_alone_and_reported(tmp_path):
    """With a position open, changing leverage or margin type would move its margin and
    liquidation price: neither is sent (the old restore set leverage regardless and only logged
    a refusal); the mismatch refuses entries on the symbol and says why."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        w = BinanceWorld(tmp_path, rs)
        w.fake.amount, w.fake.entry = 0.5, 100.0
        w.fake.symbol_cfg = {"marginType": "ISOLATED", "leverage": 20}
        w.agent.startup()
        assert sent(rs, "POST", "/fapi/v1/leverage") == sent(rs, "POST", "/fapi/v1/marginType") == 0
        assert w.fake.symbol_cfg["leverage"] == 20
        (problem,) = w.agent.status()["account_mode"]["problems"]
        assert (problem["symbol"], problem["kind"]) == (SYM, "leverage")
        assert "a position is open" in problem["en"] and "有持仓" in problem["zh"]
        assert len(w.fake.algos) == 1                  # the adopted position is still protected
        w.store.close()
