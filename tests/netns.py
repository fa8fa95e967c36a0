"""Hosts on one machine, for drills that cut links: each host is a network namespace
with its own addresses, joined to the others by a veth pair on a bridge that this
module creates (with an address of its own, so that the test process, in the root
namespace, can reach every host). Linux and root only; `unavailable()` says why not.

Only addresses of a private /24 chosen here, on the bridge and inside the namespaces
made here, ever carry traffic. `Network.remove()` undoes everything it made."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass, field

SUBNET_PREFIX = "10.231."  # a /24 under 10.231.0.0/16 that the machine does not use yet
COMMAND_TIMEOUT_S = 10


class NetworkError(RuntimeError):
    pass


def run(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NetworkError(f"{' '.join(args)}: {error}") from error
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None if they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: it makes network namespaces, veth pairs and a bridge"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"b5probe{os.getpid()}"
    try:
        run("ip", "netns", "add", probe)
    except NetworkError as error:
        return f"`ip netns add` does not work here ({error})"
    with contextlib.suppress(NetworkError):
        run("ip", "netns", "del", probe)
    return None


def free_subnet() -> ipaddress.IPv4Network:
    """The first 10.231.N.0/24 that no address or route of the root namespace touches."""
    in_use = run("ip", "-4", "-o", "addr", "show") + run("ip", "-4", "route", "show", "table", "all")
    for third in range(256):
        if f"{SUBNET_PREFIX}{third}." not in in_use:
            return ipaddress.IPv4Network(f"{SUBNET_PREFIX}{third}.0/24")
    raise NetworkError(f"every {SUBNET_PREFIX}N.0/24 is in use")


@dataclass
class Host:
    role: str
    namespace: str
    link: str  # our end of its veth pair, a port of the bridge: its cable, at the switch
    addresses: list[str]
    blocked: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.addresses[0]

    def command(self, *args: str) -> list[str]:
        """`args` as run on this host."""
        return ["ip", "netns", "exec", self.namespace, *args]


class Network:
    """A bridge and hosts on it. Names carry this process's id, so that two runs on one
    machine never touch each other's."""

    def __init__(self):
        self.tag = f"b5{os.getpid() % 100000:05d}"
        self.subnet = free_subnet()
        self.bridge = f"{self.tag}br"
        self.hosts: list[Host] = []
        self._next_address = 10
        run("ip", "link", "add", self.bridge, "type", "bridge")
        try:
            run("ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
        except NetworkError:
            self.remove()
            raise

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (where the test process speaks from)."""
        return str(self.subnet.network_address + 1)

    def add_host(self, role: str, addresses: int = 1) -> Host:
        """A namespace with `addresses` addresses on one veth, its other end on the bridge."""
        host = Host(role, f"{self.tag}-{role}", f"{self.tag}{role}",
                    [self._allocate() for _ in range(addresses)])
        self.hosts.append(host)  # before it exists, so that remove() finds a half-made one
        run("ip", "netns", "add", host.namespace)
        run("ip", "link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        run("ip", "link", "set", host.link, "master", self.bridge, "up")
        inside = ["ip", "netns", "exec", host.namespace, "ip"]
        for address in host.addresses:
            run(*inside, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        run(*inside, "link", "set", "lo", "up")
        run(*inside, "link", "set", "eth0", "up")
        return host

    def _allocate(self) -> str:
        address = str(self.subnet.network_address + self._next_address)
        self._next_address += 1
        return address

    # --- faults ---------------------------------------------------------------------

    def cut(self, host: Host) -> None:
        """Pull the host's cable: nothing in or out, and nobody is told (no reset, no
        unreachable), as when a switch port or a host's NIC dies."""
        run("ip", "link", "set", host.link, "down")

    def restore(self, host: Host) -> None:
        run("ip", "link", "set", host.link, "up")

    def block(self, host: Host, address: str) -> None:
        """Drop, silently and both ways, the host's traffic with one address: a route
        lost between two hosts that both still reach everything else."""
        if shutil.which("iptables"):
            run(*host.command("iptables", "-w", "-I", "OUTPUT", "-d", address, "-j", "DROP"))
            run(*host.command("iptables", "-w", "-I", "INPUT", "-s", address, "-j", "DROP"))
        else:
            run(*host.command("ip", "route", "add", "blackhole", f"{address}/32"))
        host.blocked.append(address)

    def unblock(self, host: Host, address: str) -> None:
        if shutil.which("iptables"):
            run(*host.command("iptables", "-w", "-D", "OUTPUT", "-d", address, "-j", "DROP"))
            run(*host.command("iptables", "-w", "-D", "INPUT", "-s", address, "-j", "DROP"))
        else:
            run(*host.command("ip", "route", "del", "blackhole", f"{address}/32"))
        host.blocked.remove(address)

    def remove(self) -> None:
        """Delete every namespace (and so its end of the veth pair, and with it ours) and
        the bridge. Best effort, all of it: call it in a `finally`. Processes still
        running inside a namespace keep it alive without its name; stop them first."""
        for host in self.hosts:
            with contextlib.suppress(NetworkError):
                run("ip", "netns", "del", host.namespace)
            with contextlib.suppress(NetworkError):
                run("ip", "link", "del", host.link)  # gone already, unless the namespace never was
        with contextlib.suppress(NetworkError):
            run("ip", "link", "del", self.bridge)
        self.hosts.clear()
