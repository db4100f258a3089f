"""``minegate platform demo``: the whole chain on one machine.

``world`` is what runs (the mines, their site files, the registry),
``servers`` the broker and the history server, ``run`` the scenario and
the entry point :func:`supervision.demo.run.run_platform_demo`.

Three simulated mines (:class:`simulators.mine.SimulatedMine`, Modbus TCP),
the unmodified gateway runtime on each, publishing over MQTT to a mosquitto
started on a free loopback port, and the platform (web page, ingest, alert
evaluator) in this process on a temporary ``platform.toml`` and SQLite
database. It prints the page's URL and a login token, then plays a
scenario (:func:`scenario`) that shows on the page:

* Qinnan coal mine is under a suspension order; at night its hoist (a skip
  winder, :mod:`simulators.production`) starts winding ore:
  "suspected illegal production" naming ``hoist_1``, with its speed,
  position and motor current and the mine's power above its baseline as
  evidence, each with its time (Lingshan quarry's crusher runs all along:
  the quarry is producing, no alert);
* Qinnan iron mine's main fans stop: airflow falls and methane in the
  return climbs; its gateway's main-fan and CH4 alarms show as
  ``gateway_alarm`` alerts with their priority (the gateway's defaults, see
  :func:`supervision.demo.world.layout_for`); on a terminal the fans
  restart later and the alarms clear;
* Lingshan quarry's gateway stops: "gateway offline"; later it comes back.

With a terminal it runs until Ctrl-C; without one (or with ``--duration``)
it ends after a set time. The gateway-only demo is ``minegate demo``.
"""
