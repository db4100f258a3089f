"""The supervision platform: many mines' gateways in, alerts and a web page out.

Started by ``minegate platform serve --config platform.toml``. One folder per
concept, each domain with ``models.py`` (tables), ``service.py`` (what it
does, on a SQLAlchemy session) and ``views.py`` (HTTP routes):

* ``db``        engine, sessions, Alembic migrations shipped in the package
* ``registry``  regions → cities → counties → mines → gateways
* ``auth``      users, roles, API tokens, web sessions; scope of each user
* ``ingest``    the gateways' MQTT messages → latest values, alarms, liveness
* ``alerting``  rules → alert states (evaluate); a notify pipeline plugs in later
* ``web``       server-rendered pages for phones (no CDN, no internet)

See docs/platform.md.
"""
