"""The gateway of the bus benchmark: ``minegate run`` with every device's
poll interval shortened after validation.

    python -m bench.bus_gateway SITE.toml POLL_INTERVAL_S

check-config refuses a serial bus whose devices need more than 100 % of
its time, rightly for a site; the benchmark wants exactly that overload
(the bus must never wait for a poll). So the site file is written with an
interval the bus can carry, validated and compiled by ``load_config`` as
``minegate run`` does, and only then is each device's ``poll_interval_s``
set to POLL_INTERVAL_S. Everything else is the real gateway: hubs, pollers,
quality, report by exception, the store. SIGTERM stops it as it stops
``minegate run``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys

from gateway.config import load_config
from gateway.logs import setup_logging
from gateway.runtime import Gateway


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.bus_gateway SITE.toml POLL_INTERVAL_S", file=sys.stderr)
        return 2
    setup_logging("text", "WARNING")
    config = load_config(argv[0])
    interval = float(argv[1])
    devices = tuple(
        dataclasses.replace(d, config=d.config.model_copy(update={"poll_interval_s": interval}))
        for d in config.devices
    )
    config = dataclasses.replace(config, devices=devices)

    async def run() -> None:
        gateway = Gateway(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.request_stop)
        await gateway.run()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
