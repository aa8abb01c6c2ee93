"""Wrappers around external programs: one module per program, each with a ``probe()``.

``run`` is the only place a child program is started, so its stderr is always logged and a
missing program always becomes a ToolMissingError with the install hint.
"""

from __future__ import annotations

import logging
import os
import resource
import subprocess
from collections.abc import Mapping, Sequence

from pipeline.errors import ToolMissingError

log = logging.getLogger(__name__)

INSTALL_HINT = "Run scripts/setup.sh (as root) to install the system packages."


def run(
    args: Sequence[str], *, stdin: bytes | None = None, timeout: float = 300, check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``args``; ``env`` adds to (or overrides in) this process's environment."""
    try:
        proc = subprocess.run(list(args), input=stdin, capture_output=True, timeout=timeout,
                              env={**os.environ, **env} if env else None)
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{args[0]} is not installed. {INSTALL_HINT}") from exc
    for line in proc.stderr.decode("utf-8", "replace").splitlines():
        if line.strip():
            log.debug("%s: %s", args[0], line)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, args, proc.stdout, proc.stderr)
    return proc


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process, every thread (``RUSAGE_SELF``), or of the
    programs it ran and waited for (``RUSAGE_CHILDREN``)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
