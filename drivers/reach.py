"""Why a link cannot be opened, said plainly.

pymodbus's ``connect()`` only answers False, so a hub could only say
"cannot connect within 1.0 s (refused, unreachable or port busy)". These
ask the operating system instead: a plain TCP connect (refused, timed out,
or the OS's reason: no route to host, unknown name...) or a look at the
serial port's device file (missing, no permission). The hubs use them when
a connect fails (``drivers.hub``), and so does ``minegate read``
(``gateway.commission``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkProblem:
    """Why a link is down: ``reason`` in a few words (for "link down
    (connection refused)"), ``detail`` the whole sentence with what to check."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return self.detail


def tcp_timed_out(host: str, port: int, timeout_s: float) -> LinkProblem:
    return LinkProblem(
        f"no answer to the connect within {timeout_s} s",
        f"no answer to a connection to {host}:{port} within {timeout_s} s: the host is down, "
        "unreachable or a firewall drops the packets",
    )


async def tcp_problem(host: str, port: int, timeout_s: float) -> LinkProblem | None:
    """What a plain connect to ``host:port`` meets; None if it connects."""
    where = f"{host}:{port}"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except ConnectionRefusedError:
        return LinkProblem(
            "connection refused",
            f"connection to {where} refused: nothing listens on that port; check the port "
            "number and that the device's Modbus TCP server is enabled",
        )
    except TimeoutError:
        return tcp_timed_out(host, port, timeout_s)
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        return LinkProblem(
            reason, f"cannot connect to {where}: {reason}; check the address and the network"
        )
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def serial_problem(port: str) -> LinkProblem | None:
    """What is wrong with a local serial port's device file; None when it
    exists and may be opened (or ``port`` is a pyserial URL)."""
    if "://" in port:
        return None
    if not os.path.exists(port):
        return LinkProblem(
            "no such serial port",
            f"serial port {port} does not exist: check the cable/adapter and the name",
        )
    if not os.access(port, os.R_OK | os.W_OK):
        return LinkProblem(
            "no permission on the serial port",
            f"no permission to open serial port {port}: add the user to its group "
            "(usually dialout) or run as that user",
        )
    return None
