"""Free listening ports on this host, drawn from outside the kernel's ephemeral range.

Asking the kernel for port 0 hands back a port from the ephemeral range, the same range it
draws the local ports of outgoing connections from. Between "free a moment ago" and the
server binding it, any client connection on the machine (a test's HTTP client, a Kafka
consumer) can take that port, and the server fails with "address already in use". Ports
below the ephemeral range are never given to outgoing connections, so here a port is drawn
at random from below it (or above it when that room is too small) and checked by binding.
"""

from __future__ import annotations

import errno
import random
import socket
from dataclasses import dataclass
from pathlib import Path


class PortInUseError(OSError):
    """A port cannot be bound; the message names the port and who wanted it (printed as it is,
    without OSError's ``[Errno 98]`` prefix)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.errno = code

    def __str__(self) -> str:
        return str(self.args[0])


#: pending-connection queue of every listening socket we serve on: a burst of new connections
#: queues instead of being refused. uvicorn listens on a socket it is given again, with its
#: ``backlog`` setting, so servers pass this there too.
LISTEN_BACKLOG = 4096


def bind_socket(host: str, port: int, owner: str) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (port 0: any free port); ``owner``
    names who wanted it in the error ("gateway port 8080 on 127.0.0.1 is already in use").

    ``host`` is an address or a name; "" means every interface, as in ``socket.bind``. A name
    with both an IPv4 and an IPv6 address binds the IPv4 one (``localhost`` is 127.0.0.1 on
    every machine, whatever order the resolver gives)."""
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, _, _, addr = next((a for a in found if a[0] == socket.AF_INET), found[0])
    except socket.gaierror as exc:
        raise PortInUseError(
            errno.EADDRNOTAVAIL, f"{owner} host {host!r} cannot be resolved ({exc.strerror})"
        ) from None
    # proto must say TCP: asyncio disables Nagle only on accepted sockets whose proto is
    # IPPROTO_TCP; with proto 0 every keep-alive answer waits ~40 ms for a delayed ACK
    sock = socket.socket(family, kind, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise PortInUseError(exc.errno, f"{owner} port {port} on {host} {why}") from None
    sock.setblocking(False)
    return sock


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Linux's default, used when the file cannot be read (another OS, a sandbox)
DEFAULT_EPHEMERAL = (32768, 60999)
#: below this live the well-known and registered ports users run things on (8080, 9092 …)
LOWEST = 10000
HIGHEST = 65535
#: the least room worth drawing from; with less, fall back to the other side or the kernel
MIN_ROOM = 2000


@dataclass(frozen=True)
class PortRange:
    """Inclusive range of port numbers."""

    low: int
    high: int

    @property
    def size(self) -> int:
        return max(0, self.high - self.low + 1)


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> PortRange:
    """The kernel's range for outgoing connections' local ports (Linux default when unreadable)."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        low, high = DEFAULT_EPHEMERAL
    return PortRange(low, high)


def listen_range(ephemeral: PortRange) -> PortRange | None:
    """Where to draw listening ports: below the ephemeral range, else above it, else nowhere
    (a side needs ``MIN_ROOM`` ports)."""
    below = PortRange(LOWEST, ephemeral.low - 1)
    above = PortRange(max(LOWEST, ephemeral.high + 1), HIGHEST)
    return next((side for side in (below, above) if side.size >= MIN_ROOM), None)


def _all_bindable(host: str, base: int, n: int) -> bool:
    socks: list[socket.socket] = []
    try:
        for k in range(n):
            sock = socket.socket()
            socks.append(sock)
            sock.bind((host, base + k))
    except OSError:
        return False
    finally:
        for sock in socks:
            sock.close()
    return True


def _kernel_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def free_port_block(
    n: int,
    host: str = "127.0.0.1",
    attempts: int = 200,
    ephemeral: PortRange | None = None,
    rng: random.Random | None = None,
) -> int:
    """A first port ``p`` such that ``p .. p + n - 1`` were all free a moment ago."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    room = listen_range(ephemeral or ephemeral_range())
    draw = rng or random.Random()
    for _ in range(attempts):
        if room is not None and room.size >= n:
            base = draw.randint(room.low, room.high - n + 1)
        else:
            base = _kernel_port(host)
            if base + n - 1 > HIGHEST:
                continue
        if _all_bindable(host, base, n):
            return base
    raise OSError(f"no {n} consecutive free ports on {host}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago, outside the ephemeral range."""
    return free_port_block(1, host)
