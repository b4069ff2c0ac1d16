"""`kodex serve --workers N`: N worker processes, each listening on the same port with its own socket.

uvicorn's own workers share one listening socket, and each accepts every connection waiting when it wakes: a
client that opens its keep-alive connections at once (a library system's pool, a load balancer) lands them all
on one worker while the others idle. Here each worker binds the address with SO_REUSEPORT (Linux), so the
kernel spreads new connections over the workers. The supervising process (which also runs the nightly
scheduler) starts the workers, starts a worker again if one dies, and stops them on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from kodex.errors import PortInUse

__all__ = ["UVICORN", "serve_workers"]

log = logging.getLogger("kodex.serve")

# How uvicorn serves kodex, in one process or in N: kodex's own access log (api/web.py) instead of uvicorn's, which
# would print paths (reader ids); and no `server` header naming the software and so its known flaws.
UVICORN = {"log_level": "info", "access_log": False, "server_header": False}


def serve_workers(host: str, port: int, workers: int) -> None:
    """Run `workers` processes serving api.web:app_from_environment on host:port until SIGTERM or Ctrl-C."""
    _listening_socket(host, port).close()  # fail here, once and clearly, if the address is taken
    context = multiprocessing.get_context("spawn")
    running: list[BaseProcess] = []
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(workers):
            running.append(_start(context, host, port))
        while not stopping:
            time.sleep(0.25)
            for number, process in enumerate(running):
                if not process.is_alive() and not stopping:
                    log.error("worker %d (pid %s) ended with exit code %s; starting another", number, process.pid,
                              process.exitcode)  # fmt: skip
                    running[number] = _start(context, host, port)
    finally:
        for process in running:
            if process.is_alive():
                process.terminate()  # uvicorn finishes the requests in progress, then exits
        for process in running:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(context: multiprocessing.context.SpawnContext, host: str, port: int) -> BaseProcess:
    process = context.Process(target=_worker, args=(host, port), daemon=True)
    process.start()
    return process


def _worker(host: str, port: int) -> None:  # pragma: no cover - runs in a spawned process (tests drive `kodex serve`)
    import uvicorn  # noqa: PLC0415

    listening = _listening_socket(host, port)
    config = uvicorn.Config("kodex.api.web:app_from_environment", factory=True, **UVICORN)  # type: ignore[arg-type]
    uvicorn.Server(config).run(sockets=[listening])


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listening.bind((host, port))
        listening.listen(2048)
    except OSError as error:
        listening.close()
        raise PortInUse(f"cannot listen on {host}:{port} ({error.strerror}); choose another --port or --host") from None
    listening.set_inheritable(True)
    return listening
