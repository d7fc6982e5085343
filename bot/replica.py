"""Which process this is, for turn leases: host, process id and a nonce unique to this start.

A lease held by a previous incarnation on the same host (same host and pid with another nonce: a container
restarted in place; or a pid that no longer exists) is known to be dead and can be taken at once, without
waiting for it to run out.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Replica:
    host: str
    pid: int
    nonce: str

    @classmethod
    def here(cls) -> Replica:
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(4))

    @property
    def id(self) -> str:
        return f"{self.host}/{self.pid}/{self.nonce}"

    def holds_dead_lease(self, owner: str | None) -> bool:
        """True when `owner` is a process on this host that is certainly gone."""
        if owner is None or owner == self.id:
            return False
        rest = owner.split("/")
        if len(rest) != 3 or rest[0] != self.host or not rest[1].isdigit():
            return False
        pid = int(rest[1])
        if pid == self.pid:
            return True  # our own pid with another nonce: an earlier run of this very process slot
        return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def lease_end(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
