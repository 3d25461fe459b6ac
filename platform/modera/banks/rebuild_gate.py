"""A cluster-wide limit on concurrent full index rebuilds, so the replicas of the match app never all
rebuild at once (each rebuild reads every bank item from the store and competes for CPU with matching).

``RebuildGate`` is a named Ray actor that hands out at most ``slots`` leases; a lease expires after
``ttl_s`` so a replica that dies while rebuilding cannot block the others. It also keeps a short history
of (holder, start, end) so operators and tests can see that rebuilds were staggered.
"""

from __future__ import annotations

import time

import ray

GATE_NAME = "modera-bank-rebuild-gate"
GATE_NAMESPACE = "modera"
HISTORY = 200


@ray.remote(num_cpus=0, max_restarts=-1)
class RebuildGate:
    def __init__(self, slots: int = 1) -> None:
        self.slots = max(1, int(slots))
        self.holders: dict[str, tuple[float, float]] = {}  # holder -> (start, expires)
        self.history: list[tuple[str, float, float | None]] = []

    def acquire(self, holder: str, ttl_s: float = 300.0) -> bool:
        now = time.time()
        self.holders = {h: v for h, v in self.holders.items() if v[1] > now}
        if holder in self.holders or len(self.holders) < self.slots:
            self.holders[holder] = (now, now + ttl_s)
            self.history = (self.history + [(holder, now, None)])[-HISTORY:]
            return True
        return False

    def release(self, holder: str) -> None:
        if self.holders.pop(holder, None) is not None:
            now = time.time()
            for i in range(len(self.history) - 1, -1, -1):
                if self.history[i][0] == holder and self.history[i][2] is None:
                    self.history[i] = (holder, self.history[i][1], now)
                    break

    def state(self) -> dict:
        return {"slots": self.slots, "holders": sorted(self.holders), "history": list(self.history)}


def get_gate(slots: int = 1):
    """The cluster's gate, created by the first caller (detached: it outlives the replica that made it)."""
    return RebuildGate.options(name=GATE_NAME, namespace=GATE_NAMESPACE, get_if_exists=True,
                               lifetime="detached").remote(slots)
