"""Failed authentications counted per client address over a fixed window, so the gateway
can slow down or block brute force. In Redis when configured (shared by every instance),
otherwise in this process."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("authsvc.failures")
REDIS_PREFIX = "portcullis:authfail:"
MAX_TRACKED = 100_000


class FailureCounter:
    def __init__(self, window: int, redis: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.redis = redis
        self.clock = clock
        self._counts: dict[str, tuple[int, int]] = {}  # address -> (window number, count)
        self._warned_at = 0.0

    async def record(self, address: str) -> int:
        """Count one failure for `address`; the failures in its current window."""
        slot = int(self.clock()) // self.window
        if self.redis is not None:
            try:
                key = f"{REDIS_PREFIX}{slot}:{address}"
                pipe = self.redis.pipeline(transaction=False)
                pipe.incr(key)
                pipe.expire(key, self.window * 2)
                count, _ = await pipe.execute()
                return int(count)
            except Exception as exc:  # Redis down: count here; say so once a minute
                if self.clock() - self._warned_at > 60:
                    self._warned_at = self.clock()
                    log.warning("failed-auth counter falls back to this process: %s", exc)
        current = self._counts.get(address)
        count = current[1] + 1 if current is not None and current[0] == slot else 1
        if len(self._counts) >= MAX_TRACKED and address not in self._counts:
            self._counts = {a: c for a, c in self._counts.items() if c[0] == slot}
            if len(self._counts) >= MAX_TRACKED:
                self._counts.clear()
        self._counts[address] = (slot, count)
        return count
