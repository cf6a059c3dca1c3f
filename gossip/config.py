"""Tuning of the gossip protocol, one dataclass with its defaults explained.

Defaults target real processes on loopback or a LAN. Measured in simulation
(tests/gossip, 200 seeds each): a crashed node is declared down by every other
node in 1.9 s (N=5) to 2.3 s (N=20) on average, worst 2.9 s / 3.5 s (budget
5 s); 5 % (even 12 %) message loss with 2 % of messages delayed 0.2-0.6 s gives
no false "down" over 10 minutes. Timing chain of a crash:

* someone probes the dead node: each of the N-1 others probes it once per N-1
  periods in random order, so the wait is geometric, ~1 period on average;
  a short period is what keeps this tail short;
* that probe fails at the end of its period (direct + k indirect pings);
* down after the suspicion timeout: 1.2-2.4 s for N <= 10 (1.6-3.1 s at
  N=20), nearer the minimum as independent confirmations arrive;
* the down rumor spreads in a few ``gossip_interval``s.

The suspicion minimum (1.2 s) is the time a falsely suspected node has to hear
the rumor and get its refutation around (a few gossip rounds), and the longest
event-loop stall a node survives without being declared down.

Departed members (``left``/``removed``) are purged from the view after
``purge_after`` and their ids quarantined for ``purge_quarantine`` more (see
:mod:`ringkv.gossip.node`): 3 days each, as Cassandra keeps removed
endpoints, so a node partitioned or stopped for days still cannot bring one
back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ringkv.errors import BadRequest

__all__ = ["GossipConfig"]


@dataclass(frozen=True)
class GossipConfig:
    #: Seconds per protocol period: one member is probed per period.
    probe_interval: float = 0.3
    #: Seconds to wait for a direct ack before asking peers to probe indirectly.
    ping_timeout: float = 0.15
    #: Seconds a relay waits for the target before answering nack; must leave
    #: room for the round trip within ``probe_interval - ping_timeout``.
    indirect_timeout: float = 0.11
    #: Peers asked to probe indirectly (SWIM's k).
    indirect_checks: int = 3
    #: Minimum suspicion timeout = mult * max(1, log10(N)) * probe_interval.
    suspicion_mult: float = 4.0
    #: Suspicion starts at min * this and shrinks towards min as independent
    #: confirmations arrive (Lifeguard).
    suspicion_max_mult: float = 2.0
    #: Confirmations that bring the timeout down to its minimum (capped at N-2).
    suspicion_confirmations: int = 3
    #: Local health (Lifeguard): probe interval and timeouts scale by 1+score,
    #: score in [0, awareness_max - 1]; raised by failed probes without nacks
    #: and by having to refute a suspicion, lowered by successful probes.
    awareness_max: int = 4
    #: Seconds between dissemination rounds, when there is something to spread.
    gossip_interval: float = 0.2
    #: Random live peers each dissemination round goes to.
    gossip_fanout: int = 3
    #: Piggybacked items per message (most recent, least transmitted first).
    max_piggyback: int = 8
    #: An item is retransmitted retransmit_mult * ceil(log10(N + 1)) times.
    retransmit_mult: int = 4
    #: Seconds between push-pull syncs with a random peer (cheap when views
    #: agree: one message of bucket fingerprints).
    sync_interval: float = 0.3
    #: Seconds between join announcements to the seeds while alone.
    join_retry: float = 1.0
    #: Seconds a ``left``/``removed`` entry stays in the view after this node
    #: first saw it so; then it is purged (sooner once a peer has purged it).
    #: ``math.inf`` keeps departed members forever.
    purge_after: float = 259200.0
    #: Seconds a purged node id stays quarantined: gossip about it is ignored
    #: (answered with the tombstone), so stale copies cannot bring it back.
    #: Refreshed whenever a stale copy shows up.
    purge_quarantine: float = 259200.0

    def __post_init__(self) -> None:
        """Reject impossible tunings with :class:`~ringkv.errors.BadRequest` (a ValueError)."""
        if not 0 < self.ping_timeout < self.probe_interval:
            raise BadRequest("need 0 < ping_timeout < probe_interval")
        if not 0 < self.indirect_timeout < self.probe_interval - self.ping_timeout:
            raise BadRequest("need 0 < indirect_timeout < probe_interval - ping_timeout")
        for name in ("gossip_interval", "sync_interval", "join_retry", "suspicion_mult"):
            if getattr(self, name) <= 0:
                raise BadRequest(f"{name} must be positive")
        if self.suspicion_max_mult < 1 or self.awareness_max < 1 or self.max_piggyback < 1:
            raise BadRequest("suspicion_max_mult, awareness_max and max_piggyback must be >= 1")
        for name in ("purge_after", "purge_quarantine"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise BadRequest(f"{name} must be a number of seconds >= 0, got {value!r}")

    def suspicion_bounds(self, n: int) -> tuple[float, float]:
        """``(min, max)`` suspicion timeout for a cluster of ``n`` members."""
        lo = self.suspicion_mult * max(1.0, math.log10(max(n, 1))) * self.probe_interval
        return lo, lo * self.suspicion_max_mult

    def retransmit_limit(self, n: int) -> int:
        return self.retransmit_mult * max(1, math.ceil(math.log10(n + 1)))
