"""`kodex serve --workers N`: the workers share the port, the kernel spreads connections over them, SIGTERM stops all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import KODEX, free_port, fresh_store, installation_env, wait_for_health

CONNECTIONS = 16  # a client pool opened at once; all on one of two workers has odds 2 / 2**16


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with fresh_store(tmp_path) as url, pytest.MonkeyPatch.context() as patch:
        environment = {**os.environ, **installation_env(tmp_path, url, patch)}
        subprocess.run([str(KODEX), "init"], env=environment, capture_output=True, check=True, timeout=120)
        yield environment


def serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(KODEX), "serve", "--no-scheduler", "--workers", "2", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def connections_held(pid: int, port: int) -> int:
    """Established TCP connections on local `port` whose socket process `pid` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    held = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
        held += local_port == port and state == "01" and inode in inodes
    return held


def health_on(connection: socket.socket) -> int:
    connection.sendall(b"GET /health HTTP/1.1\r\nHost: kodex\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return int(head.split()[1])


def test_two_workers_share_the_port_each_takes_connections_and_sigterm_stops_them_all(
    env: dict[str, str], tmp_path: Path
) -> None:
    port, workers = free_port(), []
    process = serve(env, port, tmp_path / "serve.log")
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert "server" not in health.headers  # uvicorn's banner is off in each worker too (api.serving.UVICORN)
        assert health.headers["cache-control"] == "no-store"
        pool = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
        assert [health_on(connection) for connection in pool] == [200] * CONNECTIONS

        held = {pid: connections_held(pid, port) for pid in children(process.pid)}
        serving = {pid: count for pid, count in held.items() if count}
        assert sum(serving.values()) == CONNECTIONS
        assert len(serving) == 2, held  # the kernel spread the pool over both workers
        workers = list(serving)
        for connection in pool:
            connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    time.sleep(0.5)
    assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == []  # no worker outlives the server


def test_serve_on_a_port_another_program_holds_exits_7_saying_so(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(KODEX), "serve", "--no-scheduler", "--workers", "2", "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    assert done.returncode == 7, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
