"""Free ports come from outside the kernel's ephemeral range and are checked by binding."""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path

import pytest

from lodestar.localinfra.ports import (
    DEFAULT_EPHEMERAL,
    HIGHEST,
    LOWEST,
    PortInUseError,
    PortRange,
    bind_socket,
    ephemeral_range,
    free_port,
    free_port_block,
    listen_range,
)
from lodestar.localinfra.stack_ports import StackPorts


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    path = tmp_path / "ip_local_port_range"
    path.write_text("40000\t50000\n")
    assert ephemeral_range(path) == PortRange(40000, 50000)


@pytest.mark.parametrize("content", [None, "", "garbage", "1 2 3"])
def test_an_unreadable_range_file_means_the_linux_default(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "ip_local_port_range"
    if content is not None:
        path.write_text(content)
    assert ephemeral_range(path) == PortRange(*DEFAULT_EPHEMERAL)


def test_listening_ports_are_drawn_below_the_default_ephemeral_range() -> None:
    assert listen_range(PortRange(32768, 60999)) == PortRange(LOWEST, 32767)


def test_listening_ports_go_above_the_ephemeral_range_when_below_is_too_small() -> None:
    assert listen_range(PortRange(11000, 60000)) == PortRange(60001, HIGHEST)


def test_no_room_on_either_side_leaves_the_choice_to_the_kernel() -> None:
    assert listen_range(PortRange(10500, 64000)) is None
    base = free_port_block(3, ephemeral=PortRange(1024, HIGHEST))
    assert all(_bindable(base + k) for k in range(3))


def test_drawn_ports_are_outside_this_hosts_ephemeral_range_and_bindable() -> None:
    eph = ephemeral_range()
    for _ in range(30):
        base = free_port_block(4)
        assert all(not eph.low <= base + k <= eph.high for k in range(4)), base
        assert all(_bindable(base + k) for k in range(4))
    assert not eph.low <= free_port() <= eph.high


def test_a_port_in_use_is_never_handed_out() -> None:
    eph = PortRange(*DEFAULT_EPHEMERAL)
    room = listen_range(eph)
    assert room is not None
    # the same seed draws the same first port: hold it, and the draw must move on
    first = random.Random(7).randint(room.low, room.high)
    with socket.socket() as held:
        held.bind(("127.0.0.1", first))
        held.listen()
        assert free_port_block(1, ephemeral=eph, rng=random.Random(7)) != first


def test_a_block_larger_than_any_room_is_a_clear_error() -> None:
    with pytest.raises(OSError, match=r"no 70000 consecutive free ports on 127\.0\.0\.1"):
        free_port_block(70000, attempts=3)
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        free_port_block(0)


def test_a_stacks_ports_are_one_block_with_no_two_alike() -> None:
    ports = StackPorts.free(3)
    services = [ports.broker, ports.gateway, ports.router, ports.router_admin, ports.collector, ports.trainer]
    every = [*services, ports.history, *(ports.emulator_base + k for k in range(3))]
    assert len(set(every)) == 10
    assert sorted(every) == list(range(ports.broker, ports.broker + 10))
    assert all(_bindable(p) for p in every)


def test_a_taken_service_port_is_named_without_the_errno_prefix() -> None:
    """What ``lodestar gateway`` (and every service) prints when its port is taken."""
    from lodestar.serving import PortInUseError, bind_socket

    held = bind_socket("127.0.0.1", 0, "first")
    port = held.getsockname()[1]
    try:
        with pytest.raises(PortInUseError) as caught:
            bind_socket("127.0.0.1", port, "gateway")
        assert str(caught.value) == f"gateway port {port} on 127.0.0.1 is already in use"
        assert caught.value.errno == errno.EADDRINUSE
    finally:
        held.close()


def test_an_address_not_on_this_host_cannot_be_bound() -> None:
    with pytest.raises(PortInUseError, match=r"port 8001 on 192\.0\.2\.1 cannot be bound"):
        bind_socket("192.0.2.1", 8001, "x")  # TEST-NET-1: never a local address


def test_a_host_that_does_not_resolve_is_named() -> None:
    with pytest.raises(PortInUseError) as caught:
        bind_socket("no-such-host.invalid", 8080, "gateway")  # .invalid never resolves (RFC 2606)
    assert str(caught.value).startswith("gateway host 'no-such-host.invalid' cannot be resolved (")
    assert caught.value.errno == errno.EADDRNOTAVAIL


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", ""])
def test_a_bound_socket_listens_over_tcp_without_blocking(host: str) -> None:
    """A host name resolves (to IPv4 first), an IPv6 literal binds IPv6, "" every interface;
    the protocol is named TCP, which asyncio needs to switch Nagle off on the accepted
    connections (see ``bind_socket``)."""
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    sock = bind_socket(host, 0, "test")
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.family == (socket.AF_INET6 if host == "::1" else socket.AF_INET)
        assert not sock.getblocking()
        if host == "":
            assert sock.getsockname()[0] == "0.0.0.0"
        with socket.create_connection((host or "127.0.0.1", sock.getsockname()[1]), timeout=2):
            pass  # the kernel completes the handshake from the backlog: it listens
    finally:
        sock.close()


def test_a_name_with_both_families_binds_its_ipv4_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that lists ``localhost``'s IPv6 address first (some /etc/hosts do) must not
    move a service off 127.0.0.1, where every client in this project connects."""
    real = socket.getaddrinfo

    def six_first(host: str | None, port: int, *args: object, **kwargs: object) -> list[object]:
        if host == "dual-stack.test":
            v6, v4 = real("::1", port, type=socket.SOCK_STREAM), real("127.0.0.1", port, type=socket.SOCK_STREAM)
            return [*v6, *v4]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", six_first)
    sock = bind_socket("dual-stack.test", 0, "test")
    try:
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
