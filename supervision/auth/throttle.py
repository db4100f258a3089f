"""Failed web logins, counted per user name and per client address: after
too many within the window, logins from there are refused for a while (a
password guesser gets a few tries an hour, not thousands a second). In
memory, per instance; tokens are 256 random bits and need no throttle."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 900.0
MAX_PER_USER = 5
MAX_PER_CLIENT = 20
_MAX_KEYS = 100_000  # junk names must not grow memory without bound


@dataclass
class LoginThrottle:
    window_s: float = WINDOW_S
    max_per_user: int = MAX_PER_USER
    max_per_client: int = MAX_PER_CLIENT
    _fails: dict[str, deque[int]] = field(default_factory=dict)

    def _recent(self, key: str, now_ns: int) -> deque[int]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        horizon = now_ns - int(self.window_s * 1e9)
        while q and q[0] <= horizon:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after_s(self, user: str, client: str, now_ns: int) -> float | None:
        """Seconds until a login from ``client`` for ``user`` is allowed
        again, or None if it is allowed now."""
        waits = []
        for key, limit in ((f"u:{user}", self.max_per_user), (f"c:{client}", self.max_per_client)):
            q = self._recent(key, now_ns)
            if len(q) >= limit:
                waits.append((q[0] + int(self.window_s * 1e9) - now_ns) / 1e9)
        return max(waits) if waits else None

    def failed(self, user: str, client: str, now_ns: int) -> None:
        if len(self._fails) > _MAX_KEYS:
            self._fails.clear()
        for key in (f"u:{user}", f"c:{client}"):
            self._fails.setdefault(key, deque()).append(now_ns)

    def succeeded(self, user: str) -> None:
        self._fails.pop(f"u:{user}", None)
