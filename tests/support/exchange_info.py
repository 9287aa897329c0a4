"""GET /fapi/v1/exchangeInfo payloads shaped like the official example."""
from __future__ import annotations


def symbol_entry(name: str, tick: str, step: str, min_qty: str, max_qty: str, notional: str,
                 price_precision: int, qty_precision: int, market_step: str | None = None) -> dict:
    """One symbol entry shaped like the official GET /fapi/v1/exchangeInfo example."""
    return {
        "symbol": name, "pair": name, "contractType": "PERPETUAL", "status": "TRADING",
        "baseAsset": name[:-4], "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": price_precision, "quantityPrecision": qty_precision,
        "baseAssetPrecision": 8, "quotePrecision": 8, "triggerProtect": "0.0500",
        "filters": [
            {"filterType": "PRICE_FILTER", "maxPrice": "4529764", "minPrice": "556.80",
             "tickSize": tick},
            {"filterType": "LOT_SIZE", "maxQty": max_qty, "minQty": min_qty, "stepSize": step},
            {"filterType": "MARKET_LOT_SIZE", "maxQty": "120", "minQty": min_qty,
             "stepSize": market_step or step},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": notional},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
             "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ],
        "OrderType": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                      "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


EXCHANGE_INFO = {
    "exchangeFilters": [],
    "rateLimits": [{"interval": "MINUTE", "intervalNum": 1, "limit": 2400,
                    "rateLimitType": "REQUEST_WEIGHT"}],
    "serverTime": 1565613908500,
    "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "0"}],
    "symbols": [
        symbol_entry("BTCUSDT", "0.10", "0.001", "0.001", "1000", "100", 2, 3),
        symbol_entry("ETHUSDT", "0.01", "0.1", "0.1", "10000", "20", 2, 1),
        symbol_entry("BLZUSDT", "0.0001", "1", "1", "10000000", "5.0", 4, 0),
        symbol_entry("TENUSDT", "0.0001", "10", "10", "5000000", "5", 4, 0, market_step="100"),
    ],
    "timezone": "UTC",
}
