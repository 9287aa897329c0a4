"""Every exception the project raises on purpose across module boundaries, in one tree.

    AgentError                      base: `except AgentError` catches every deliberate failure
    ├── ValidationError (ValueError)    a value was refused; the message names field and rule
    │   ├── SettingsError               a setting in .env / the environment / the CLI
    │   ├── KnowledgeError              a write to the knowledge store
    │   └── LearningError               an input to the weight learner
    ├── BinanceError                    any failure talking to Binance (HTTP status, code, msg)
    │   ├── NetworkError                connection error, timeout, 5xx: retryable
    │   ├── RateLimitError              429/418: blocked for `retry_after` seconds
    │   ├── AuthError                   key missing or refused, bad signature, no permission
    │   ├── OrderRejected               Binance (or the paper account) refused an order
    │   └── UnknownOrderStatus          an order's outcome is unknown even after a lookup
    ├── MarketUnavailable               no market data right now (network, replay not started)
    ├── DownloadError                   an archive month could not be downloaded
    │   ├── NotPublished                HTTP 404: Binance has not published that month
    │   └── ChecksumMismatch            the bytes do not match Binance's sha256
    ├── AgentAlreadyRunning             start() while the agent thread is alive
    ├── ReplayFinished                  start() of a replay whose data has all been played
    ├── OrderNotOpen                    the order to cancel is not open on the exchange
    └── CancelRefused                   cancelling would leave a position without its stop

The validation errors stay ValueErrors because callers (and the dashboard's 400 mapping)
catch ValueError for "bad input". Messages are written for the trader: callers may show
them as they are.

This module imports nothing from the project, so any layer (the web dashboard included, even
when a core module failed to import) can name these classes without pulling the core in.
"""
from __future__ import annotations


class AgentError(Exception):
    """Base of every error the project raises on purpose; the message is written for the trader."""


# ----------------------------------------------------------------------------- bad input
class ValidationError(AgentError, ValueError):
    """A value was refused; the message names the field, the bad value and the rule."""


class SettingsError(ValidationError):
    """A setting is invalid; the message is one line a trader can act on."""


class KnowledgeError(ValidationError):
    """A write was refused: the message names the field and the rule."""


class LearningError(ValidationError):
    """Bad input to the learner (weights, samples or parameters); the message names the field."""


# ----------------------------------------------------------------------------- Binance
class BinanceError(AgentError):
    """Any failure talking to Binance; carries HTTP status, Binance code and msg."""

    def __init__(self, msg: str = "", code: int | None = None, status: int | None = None):
        self.msg = msg
        self.code = code
        self.status = status
        super().__init__(f"{msg} (status={status}, code={code})")


class NetworkError(BinanceError):
    """Connection error / timeout / 5xx: retryable (nothing happened, or it was a GET)."""


class RateLimitError(BinanceError):
    """429/418: stop sending until `retry_after` seconds have passed."""

    def __init__(self, msg: str = "", code: int | None = None, status: int | None = None,
                 retry_after: float = 0.0):
        self.retry_after = float(retry_after)
        super().__init__(msg, code, status)


class AuthError(BinanceError):
    """Missing/invalid API key, bad signature or missing permission."""


class OrderRejected(BinanceError):
    """An order/cancel call answered with a Binance error code (4xx)."""


class UnknownOrderStatus(BinanceError):
    """Order outcome could not be determined even after looking its client id up."""

    def __init__(self, msg: str = "", code: int | None = None, status: int | None = None,
                 client_order_id: str = ""):
        self.client_order_id = client_order_id
        super().__init__(msg, code, status)


# ----------------------------------------------------------------------------- market data
class MarketUnavailable(AgentError):
    """Market data cannot be had right now (network down, Binance unreachable, replay not
    started); the message says why in words a trader can act on."""


class DownloadError(AgentError):
    """A month could not be downloaded; the message says which and why."""


class NotPublished(DownloadError):
    """HTTP 404: Binance has not published this month (yet), or the symbol/interval is wrong."""


class ChecksumMismatch(DownloadError):
    """The downloaded bytes do not match Binance's sha256; the file was deleted."""


# ----------------------------------------------------------------------------- agent
class AgentAlreadyRunning(AgentError):
    """start() was called while the agent thread is alive."""


class ReplayFinished(AgentError):
    """start() of a replay that has played its data to the end: nothing is left to replay."""


# ----------------------------------------------------------------------------- orders
class OrderNotOpen(AgentError):
    """The order to cancel is not (or no longer) open on the exchange."""


class CancelRefused(AgentError):
    """Cancelling would leave an open position without its stop-loss; the trader must confirm."""
