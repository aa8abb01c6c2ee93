"""``digitize serve``: the read API (:mod:`pipeline.access.api`) under uvicorn, one process per
core, each on a listening socket of its own.

    serve(settings, host, port, workers) -> None   # until SIGINT/SIGTERM

Each call is Python work (the token, the query, the access log's rows, the JSON), so one process
answers on one core and ``workers`` processes share the calls between the cores. uvicorn's own
``workers`` share one listening socket, and whichever worker wakes first takes every connection
waiting: under the search benchmark's 50 kept-alive clients one worker held all 50, then 42, 36
and 29 of them while the other core's worker idled, and the busier worker set the slowest answers
(issue 18). Here every worker listens on a socket of its own, all bound to the port with
``SO_REUSEPORT``, and the kernel spreads the connections over them (30/20 to 22/28 in the same
measurement).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ConfigError, DigitizeError
from pipeline.store import warehouse

BACKLOG = 2048  # uvicorn's own
STOP_SECONDS = 30  # a worker's time to finish the calls in flight once told to stop
_PR_SET_PDEATHSIG = 1  # prctl(2)


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Run the API until stopped (SIGINT/SIGTERM), with the warehouse at its latest schema."""
    import uvicorn

    from pipeline.access.api import create_app

    warehouse.migrate(settings.warehouse_url)
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, **_options())
        return
    _refuse_taken_port(host, port)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(host, port), name=f"api-worker-{n}")
                 for n in range(1, workers + 1)]
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    for process in processes:
        process.start()
    while not stop.is_set() and all(p.is_alive() for p in processes):
        stop.wait(0.5)
    dead = [p for p in processes if not p.is_alive()]
    for process in processes:
        process.terminate()  # SIGTERM: uvicorn answers the calls in flight, then exits
    for process in processes:
        process.join(STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
    if dead and not stop.is_set():
        # the others would go on answering on fewer cores, unnoticed: the command stops, for
        # its supervisor (systemd, the container) to start it whole again
        raise DigitizeError(f"Tiến trình {dead[0].name} của API đã dừng (mã thoát "
                            f"{dead[0].exitcode}); các tiến trình còn lại cũng đã dừng. Xem các "
                            "dòng nhật ký phía trên, rồi chạy lại digitize serve.")


def _options() -> dict[str, Any]:
    # log_config=None: uvicorn's lines go through the logging the CLI set up; access_log=False:
    # api.RequestLog writes the line instead, the holder id masked
    return {"access_log": False, "log_config": None, "server_header": False}


def _refuse_taken_port(host: str, port: int) -> None:
    """ConfigError when something listens on the port already: the workers' sockets would join
    another ``digitize serve`` of the same user there (``SO_REUSEPORT``) instead of failing."""
    try:
        _bound(host, port, reuse_port=False).close()
    except OSError as exc:
        raise ConfigError(f"Không mở được cổng {port} trên {host} ({exc.strerror}): có chương "
                          "trình khác đang dùng cổng này; chọn cổng khác (--port).") from exc


def _bound(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, the way uvicorn binds its own (IPv6 for a host
    with a colon)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _worker(host: str, port: int) -> None:
    """One worker process: its own socket on the shared port, the app from the environment (as
    the command read it), until SIGTERM."""
    import uvicorn

    # out of the command's process group: Ctrl-C reaches the command, which stops each worker
    # once (uvicorn cuts the calls in flight at a second signal)
    os.setpgrp()
    if sys.platform == "linux":
        # the kernel stops the worker if the command dies without stopping it (SIGKILL), so
        # that no worker is left holding the port
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    sock = _bound(host, port, reuse_port=True)
    sock.listen(BACKLOG)
    config = uvicorn.Config("pipeline.access.api:app_from_environment", factory=True, **_options())
    uvicorn.Server(config).run(sockets=[sock])
