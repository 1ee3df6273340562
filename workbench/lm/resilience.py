"""What keeps a run honest against a real endpoint: retries, a breaker, a rate limiter.

- `RetryPolicy`: 429, 5xx, 408/409, timeouts, dropped connections and replies that are not
  a completion are retried with exponential backoff and full jitter, waiting at least what
  `Retry-After` asks, at most `retries` times and `max_seconds` of waiting per call. Other
  4xx (a bad request, a rejected key, an unknown model) fail at once: retrying cannot help.
- `Breaker`: counts LM calls that failed after their retries; `limit` in a row opens it,
  and from then on every call fails at once (the run stops instead of paying for, or
  waiting on, a dead endpoint). A success closes the count.
- `RateLimiter`: client-side requests- and tokens-per-minute, shared by every thread (and
  every LM object) of the process that talks to the same endpoint and model.

Stdlib only, so backends and tests use it without DSPy.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

RETRY_STATUS = frozenset({408, 409, 429})


class EndpointDown(RuntimeError):
    """The breaker is open: the endpoint failed too many calls in a row."""


@dataclass
class RetryPolicy:
    """At most `retries` extra attempts and `max_seconds` of waiting per call; the n-th wait
    is drawn from [0, min(cap, base * 2**n)] and never shorter than Retry-After."""

    retries: int = 5
    max_seconds: float = 60.0
    base_seconds: float = 0.5
    cap_seconds: float = 20.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `attempt` (0-based): full jitter over an
        exponential ceiling, never less than the server's Retry-After."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** attempt))
        wait = self.rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait


def _chain(exc: BaseException | None):
    """The error and what caused it (DSPy wraps an engine's error in its own LM*Error)."""
    seen = 0
    while exc is not None and seen < 5:
        yield exc
        exc, seen = exc.__cause__, seen + 1


def _transient_one(exc: BaseException) -> bool:
    status = getattr(exc, "status", None)
    if status is not None:
        return status in RETRY_STATUS or status >= 500
    return type(exc).__name__ in ("RateLimitError", "ServerError", "TimeoutError", "TransportError")


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: rate limits, server errors, timeouts, transport failures."""
    return any(_transient_one(e) for e in _chain(exc))


def is_endpoint_failure(exc: BaseException) -> bool:
    """The endpoint's fault, not the input's or the model's: transient failures that outlived
    their retries, and a key or account the endpoint stopped accepting."""
    return is_transient(exc) or any(type(e).__name__ in ("AuthError", "BillingError") for e in _chain(exc))


class Breaker:
    """Opens after `limit` consecutive endpoint failures (None: never). Other errors (a prompt
    over the context window, a request the endpoint rejects) neither count nor reset it."""

    def __init__(self, limit: int | None = 10) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._in_a_row = 0
        self.reason = ""

    @property
    def open(self) -> bool:
        return bool(self.reason)

    def check(self) -> None:
        if self.reason:
            raise EndpointDown(self.reason)

    def record(self, error: BaseException | None) -> None:
        with self._lock:
            if error is None:
                self._in_a_row = 0
                return
            if not is_endpoint_failure(error):
                return
            self._in_a_row += 1
            if self.limit is not None and self._in_a_row >= self.limit and not self.reason:
                first = str(error).splitlines()[0][:200] if str(error) else ""
                self.reason = (f"{self._in_a_row} LM calls in a row failed after their retries "
                               f"(last: {type(error).__name__}: {first})")


class RateLimiter:
    """Spaces requests so that at most `rpm` requests and `tpm` tokens start per minute.

    Each call reserves its slot on two schedules (requests and tokens) under a lock and
    sleeps outside it, so threads queue in arrival order without holding the lock. A burst
    of one second's worth is allowed before spacing starts.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._lock = threading.Lock()
        self._next_request = 0.0
        self._next_token = 0.0

    def reserve(self, tokens: int) -> float:
        """Seconds the caller must wait before sending a request of about `tokens` tokens."""
        if not self.rpm and not self.tpm:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = now
            if self.rpm:
                slot = max(self._next_request, now - 1.0)  # up to 1 s of unused capacity
                start = max(start, slot)
                self._next_request = slot + 60.0 / self.rpm
            if self.tpm:
                slot = max(self._next_token, now - 1.0)
                start = max(start, slot)
                self._next_token = slot + tokens * 60.0 / self.tpm
            return max(0.0, start - now)

    def wait(self, tokens: int) -> float:
        seconds = self.reserve(tokens)
        if seconds > 0:
            time.sleep(seconds)
        return seconds


_limiters: dict[tuple, RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(key: tuple, rpm: float | None, tpm: float | None) -> RateLimiter:
    """One limiter per endpoint+model+limits per process, whichever LM object asks."""
    with _limiters_lock:
        return _limiters.setdefault((*key, rpm, tpm), RateLimiter(rpm, tpm))


def mask_secret(text: str, secret: str | None) -> str:
    """`text` with `secret` masked (some endpoints echo the key they rejected)."""
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


class CallStats(threading.local):
    """Per-thread counters, so one evaluated example can report its own retries."""

    retries = 0


call_stats = CallStats()
