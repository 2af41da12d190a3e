"""Login throttling: each failed attempt beyond a few free ones doubles the wait before
the next, per username (slows guessing one account's password from many addresses) and
per client address (slows one address trying many accounts)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_MAX_EXPONENT = 60  # keeps 2**n finite; any realistic max_delay is reached long before


@dataclass
class _Entry:
    failures: int
    last_failure: float


class LoginThrottle:
    """Slows down repeated login failures per username and per client address.

    Not thread-safe, by design: it lives in one asyncio event loop, where no two calls
    interleave. Memory is bounded: entries idle for `forget_after` seconds are dropped,
    and beyond `max_entries` the least recently failed are evicted.
    """

    def __init__(
        self,
        *,
        free_failures: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        forget_after: float = 900.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free_failures
        self._base = base_delay
        self._max = max_delay
        self._forget_after = forget_after
        self._max_entries = max_entries
        self._clock = clock  # monotonic: wall-clock jumps must not lift or extend a block
        # Ordered by last failure, oldest first, so pruning and eviction pop from the front.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until another attempt is allowed for all `keys` (0.0: allowed now)."""
        now = self._clock()
        self._prune(now)
        wait = 0.0
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None:
                wait = max(wait, entry.last_failure + self._delay(entry.failures) - now)
        return wait

    def failed(self, keys: Iterable[str]) -> None:
        """Count one failed attempt against each key."""
        now = self._clock()
        self._prune(now)
        for key in keys:
            entry = self._entries.pop(key, None)
            failures = entry.failures + 1 if entry is not None else 1
            self._entries[key] = _Entry(failures, now)  # re-inserted at the newest end
        while len(self._entries) > self._max_entries:
            # Under a flood of distinct keys, forgetting the stalest beats running out of
            # memory; the flooding address itself stays among the newest.
            self._entries.popitem(last=False)

    def succeeded(self, keys: Iterable[str]) -> None:
        """Forget the failures of these keys: the user proved they know the password."""
        for key in keys:
            self._entries.pop(key, None)

    def _delay(self, failures: int) -> float:
        if failures < self._free:
            return 0.0
        return min(self._base * 2.0 ** min(failures - self._free, _MAX_EXPONENT), self._max)

    def _prune(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.last_failure < self._forget_after:
                break
            del self._entries[key]
