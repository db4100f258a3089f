"""``minegate platform serve | migrate | admin ...``.

Registered into the ``minegate`` command by ``gateway/cli.py`` like the
``sim`` and ``survey`` commands. Exit codes: 0 ok, 2 usage or configuration
error, 1 runtime failure.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Any

from gateway.logs import add_log_options

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("minegate.platform")


def _err(msg: str) -> None:
    print(f"minegate platform: {msg}", file=sys.stderr)


def _load(args: argparse.Namespace) -> Any:
    from supervision.config import PlatformConfigError, load_config

    try:
        return load_config(args.config)
    except PlatformConfigError as exc:
        for e in exc.errors:
            print(e, file=sys.stderr)
        return None


def _engine(config: Any) -> Any:
    from sqlalchemy.engine import make_url

    from supervision.db import make_engine

    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        # the embedded default lives in data/: make the folder, as the gateway does
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return make_engine(config.database.url)


def _migrate(engine: Any) -> str | None:
    """Upgrade; an error message naming the database, or None."""
    from sqlalchemy.exc import OperationalError

    from supervision.db.migrate import upgrade

    try:
        upgrade(engine)
    except OperationalError as exc:
        return f"database {engine.url.render_as_string(hide_password=True)}: {exc.orig}"
    return None


def cmd_migrate(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_USAGE
    engine = _engine(config)
    problem = _migrate(engine)
    if problem:
        _err(problem)
        return EXIT_FAILURE
    from supervision.db.migrate import current_revision

    print(f"database at revision {current_revision(engine)}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.logs import setup_logging
    from supervision.app import create_app

    config = _load(args)
    if config is None:
        return EXIT_USAGE
    problem = config.listen_problem()
    if problem:
        _err(f"{config.source}: {problem}")
        return EXIT_USAGE
    setup_logging(args.log_format, args.log_level.upper())
    engine = _engine(config)
    problem = _migrate(engine)
    if problem:
        _err(problem)
        return EXIT_FAILURE
    s = config.server
    app = create_app(config, engine=engine)
    uv = uvicorn.Config(
        app,
        host=s.host,
        port=s.port,
        ssl_certfile=str(s.tls_cert) if s.tls_cert else None,
        ssl_keyfile=str(s.tls_key) if s.tls_key else None,
        proxy_headers=s.behind_reverse_proxy,
        forwarded_allow_ips=s.forwarded_allow_ips if s.behind_reverse_proxy else None,
        log_config=None,  # our logging setup
        access_log=False,
        server_header=False,
    )
    scheme = "https" if s.tls else "http"
    log.info("platform on %s://%s:%d (database %s)", scheme, s.host, s.port,
             engine.url.render_as_string(hide_password=True))  # fmt: skip
    server = uvicorn.Server(uv)
    try:
        server.run()
    except OSError as exc:
        _err(f"cannot listen on {s.host}:{s.port}: {exc.strerror or exc}")
        return EXIT_FAILURE
    failed = app.state.ctx.extra.get("failed")
    if failed:
        _err(str(failed))
        return EXIT_FAILURE
    return EXIT_OK if server.started else EXIT_FAILURE


def cmd_demo(args: argparse.Namespace) -> int:
    from supervision.demo.run import run_platform_demo

    if args.duration is not None and not args.duration > 0:
        _err(f"--duration must be > 0 seconds, got {args.duration:g}")
        return EXIT_USAGE
    if not 1 <= args.port <= 65535:
        _err(f"--port must be 1..65535, got {args.port}")
        return EXIT_USAGE
    return run_platform_demo(duration_s=args.duration, port=args.port, data_dir=args.data_dir)


def cmd_worker(args: argparse.Namespace) -> int:
    """A survey-check worker on Dramatiq (jobs.engine = "dramatiq")."""
    from gateway.logs import setup_logging
    from supervision.jobs.engine import serve_worker

    config = _load(args)
    if config is None:
        return EXIT_USAGE
    if config.jobs.engine != "dramatiq":
        _err(f"{config.source}: jobs.engine is {config.jobs.engine!r}: the service runs the "
             'checks itself; set jobs.engine = "dramatiq" to run workers')  # fmt: skip
        return EXIT_USAGE
    setup_logging(args.log_format, args.log_level.upper())
    problem = _migrate(_engine(config))
    if problem:
        _err(problem)
        return EXIT_FAILURE
    try:
        serve_worker(config, threads=args.threads)
    except OSError as exc:
        _err(f"redis {config.jobs.redis_url}: {exc}")
        return EXIT_FAILURE
    return EXIT_OK


# --- admin --------------------------------------------------------------------


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def cmd_admin(args: argparse.Namespace) -> int:
    import time

    from supervision.audit.service import Where, record
    from supervision.auth import service as auth
    from supervision.auth.manage import where_user
    from supervision.auth.scope import AreaLevel
    from supervision.db import make_sessionmaker
    from supervision.registry import service as registry
    from supervision.registry.manage import where_county, where_mine

    config = _load(args)
    if config is None:
        return EXIT_USAGE
    engine = _engine(config)
    problem = _migrate(engine)
    if problem:
        _err(problem)
        return EXIT_FAILURE
    now = time.time_ns()
    what = args.admin_command
    try:
        os_user = getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container)
        os_user = "unknown"
    actor = f"{os_user} (command line)"
    try:
        with make_sessionmaker(engine)() as db, db.begin():

            def audit(action: str, target: str, detail: str, where: Where) -> None:
                record(db, actor, action, target, detail, where, now)

            if what == "add-region":
                r = registry.add_region(db, args.code, args.name)
                audit("region.add", f"region {r.code}", f"name {r.name!r}", Where(r.id))
            elif what == "add-city":
                c = registry.add_city(db, args.region, args.code, args.name)
                audit("city.add", f"city {c.code}", f"name {c.name!r}", Where(c.region_id, c.id))
            elif what == "add-county":
                co = registry.add_county(db, args.city, args.code, args.name)
                audit("county.add", f"county {co.code}", f"name {co.name!r}", where_county(co))
            elif what == "add-mine":
                m = registry.add_mine(
                    db, args.county, args.code, args.name,
                    licence_file=str(Path(args.licence).resolve()) if args.licence else None,
                    status=args.status, order_no=args.order_no, order_from=args.order_from,
                    order_to=args.order_to, baseline_power_kw=args.baseline_kw,
                )  # fmt: skip
                audit("mine.add", f"mine {m.code}", f"name {m.name!r}, status {m.status}",
                      where_mine(m))  # fmt: skip
            elif what == "set-status":
                from sqlalchemy import select

                from supervision.registry.models import Mine

                mine = db.scalar(select(Mine).where(Mine.code == args.mine))
                if mine is None:
                    raise registry.RegistryInputError(f"no mine with code {args.mine!r}")
                old = mine.status
                registry.set_mine_status(
                    db, mine, args.status, order_no=args.order_no,
                    order_from=args.order_from, order_to=args.order_to,
                )  # fmt: skip
                audit("mine.status", f"mine {mine.code}",
                      f"status {old} → {mine.status}; order {mine.order_no or '—'} "
                      f"{mine.order_from or ''}..{mine.order_to or 'open'}", where_mine(mine))  # fmt: skip
            elif what == "add-gateway":
                g = registry.add_gateway(db, args.mine, args.site, args.gateway, now_ns=now)
                audit("gateway.add", f"gateway {g.site}/{g.name}", f"mine {g.mine.code}",
                      where_mine(g.mine))  # fmt: skip
            elif what == "add-user":
                area, code = AreaLevel.ALL, None
                for level in ("region", "city", "county", "mine"):
                    if getattr(args, level):
                        area, code = AreaLevel(level), getattr(args, level)
                password = None
                if args.password_stdin:
                    password = sys.stdin.readline().rstrip("\n")
                elif args.password:
                    password = getpass.getpass(f"password for {args.name}: ")
                u = auth.create_user(db, args.name, args.role, area=area, area_code=code,
                                     password=password, now_ns=now)  # fmt: skip
                audit("user.add", f"user {u.name}", f"role {u.role}, {area.value} {code or ''}",
                      where_user(db, u))  # fmt: skip
            elif what == "issue-token":
                from sqlalchemy import select

                from supervision.auth.models import User

                user = db.scalar(select(User).where(User.name == args.user))
                if user is None:
                    raise auth.AuthInputError(f"no user {args.user!r}")
                ttl = args.days * 86400 if args.days else None
                print(auth.issue_token(db, user, label=args.label, now_ns=now, ttl_s=ttl))
                audit("token.issue", f"user {user.name}", f"label {args.label!r}",
                      where_user(db, user))  # fmt: skip
            elif what in ("revoke-tokens", "disable-user"):
                from sqlalchemy import select

                from supervision.auth.models import User

                user = db.scalar(select(User).where(User.name == args.user))
                if user is None:
                    raise auth.AuthInputError(f"no user {args.user!r}")
                n = auth.revoke_access(db, user, disable=what == "disable-user")
                done = "disabled, " if what == "disable-user" else ""
                audit("user.disable" if done else "token.revoke", f"user {user.name}",
                      f"{done}{n} token(s) revoked, web sessions ended", where_user(db, user))  # fmt: skip
                print(f"{user.name}: {done}{n} token(s) revoked, web sessions ended")
            elif what == "assign-contractor":
                from supervision.auth.scope import Scope

                admin = auth.Principal(0, actor, "admin", Scope(AreaLevel.ALL), "cli")
                changed = auth.assign_contractor(
                    db, admin, args.user, args.mine, now_ns=now, remove=args.remove
                )
                state = "no longer assigned to" if args.remove else "assigned to"
                print(f"{args.user}: {state} {args.mine}" + ("" if changed else " (already)"))
            elif what == "list":
                _list(db, args.what)
    except (registry.RegistryInputError, auth.AuthInputError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    return EXIT_OK


def _list(db: Any, what: str) -> None:
    from sqlalchemy import select

    from supervision.auth.models import User
    from supervision.registry.models import City, County, Gateway, Mine, Region

    if what == "regions":
        for r in db.scalars(select(Region).order_by(Region.code)):
            print(f"{r.code}\t{r.name}")
    elif what == "cities":
        for c, r in db.execute(select(City, Region).join(Region).order_by(City.code)):
            print(f"{c.code}\t{c.name}\tregion {r.code}")
    elif what == "counties":
        for c, ci in db.execute(select(County, City).join(City).order_by(County.code)):
            print(f"{c.code}\t{c.name}\tcity {ci.code}")
    elif what == "mines":
        for m, c in db.execute(select(Mine, County).join(County).order_by(Mine.code)):
            order = (
                f"\torder {m.order_no or ''} {m.order_from or ''}..{m.order_to or ''}"
                if m.status != "producing"
                else ""
            )
            print(f"{m.code}\t{m.name}\t{m.status}\tcounty {c.code}{order}")
    elif what == "gateways":
        for g, m in db.execute(select(Gateway, Mine).join(Mine).order_by(Gateway.topic_key)):
            print(f"{g.site}/{g.name}\tmine {m.code}")
    elif what == "audit":
        from datetime import UTC, datetime

        from supervision.audit.models import AuditEvent

        for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id)):
            when = datetime.fromtimestamp(e.ts_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            print(f"{when}\t{e.actor}\t{e.action}\t{e.target}\t{e.detail}")
    elif what == "users":
        from supervision.auth.models import ContractorMine

        for u in db.scalars(select(User).order_by(User.name)):
            if u.role == "contractor":
                codes = db.scalars(
                    select(Mine.code)
                    .join(ContractorMine, ContractorMine.mine_id == Mine.id)
                    .where(ContractorMine.user_id == u.id)
                    .order_by(Mine.code)
                )
                print(f"{u.name}\t{u.role}\tmines {','.join(codes) or '-'}\t"
                      f"{'active' if u.active else 'disabled'}")  # fmt: skip
                continue
            area = next(
                (f"{lv} {getattr(u, lv + '_id')}" for lv in ("mine", "county", "city", "region")
                 if getattr(u, lv + "_id") is not None), "all",
            )  # fmt: skip
            print(f"{u.name}\t{u.role}\t{area}\t{'active' if u.active else 'disabled'}")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "platform",
        help="the supervision platform: serve, migrate, admin",
        description="Many mines' gateways in over MQTT, alerts and a web page out (docs/platform.md).",
    )
    psub = p.add_subparsers(dest="platform_command", required=True, metavar="COMMAND")

    def with_config(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", "-c", required=True, type=Path, help="platform.toml")

    serve = psub.add_parser("serve", help="run the platform (web, API, ingest, alerts)")
    with_config(serve)
    add_log_options(serve)
    serve.set_defaults(func=cmd_serve)

    demo = psub.add_parser(
        "demo",
        help="the whole chain: simulated mines, their gateways, a broker and the platform",
        description="Three simulated mines (one under a suspension order), their gateways, "
        "a mosquitto on a free loopback port and the platform; prints the page's URL and a "
        "login token and plays a scenario (docs/platform.md, 'The demo').",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: until Ctrl-C on a terminal, 60 s without one)",
    )
    demo.add_argument("--port", type=int, default=8080, help="the page's port (loopback)")
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the database, site files and logs in this new folder "
        "(default: a temporary folder, removed at the end)",
    )
    demo.set_defaults(func=cmd_demo)
    worker = psub.add_parser(
        "worker", help='run survey checks from Redis (jobs.engine = "dramatiq")'
    )
    with_config(worker)
    worker.add_argument(
        "--threads", type=int, default=1, help="checks at once in this process (default 1)"
    )
    add_log_options(worker)
    worker.set_defaults(func=cmd_worker)

    migrate = psub.add_parser("migrate", help="create or upgrade the database")
    with_config(migrate)
    migrate.set_defaults(func=cmd_migrate)

    admin = psub.add_parser("admin", help="registry, users and tokens from the command line")
    with_config(admin)
    asub = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    a = asub.add_parser("add-region", help="add a region")
    a.add_argument("code", help="the region's code")
    a.add_argument("name", help="the region's name")
    a = asub.add_parser("add-city", help="add a city of a region")
    a.add_argument("--region", required=True, help="region code")
    a.add_argument("code", help="the city's code")
    a.add_argument("name", help="the city's name")
    a = asub.add_parser("add-county", help="add a county of a city")
    a.add_argument("--city", required=True, help="city code")
    a.add_argument("code", help="the county's code")
    a.add_argument("name", help="the county's name")

    def order_args(parser: argparse.ArgumentParser, default: str | None) -> None:
        parser.add_argument("--status", default=default, required=default is None,
                            choices=("producing", "suspended", "closed"), help="the mine's status")  # fmt: skip
        parser.add_argument("--order-no", help="number of the suspension or closure order")
        parser.add_argument("--order-from", type=_day, help="YYYY-MM-DD")
        parser.add_argument("--order-to", type=_day, help="YYYY-MM-DD (open if left out)")

    a = asub.add_parser("add-mine", help="add a mine of a county")
    a.add_argument("--county", required=True, help="county code")
    a.add_argument("--licence", help="licence file (.toml or .geojson, see docs/survey-inputs.md)")
    a.add_argument("--baseline-kw", type=float, help="power drawn while not producing")
    order_args(a, "producing")
    a.add_argument("code", help="the mine's code (e.g. its licence number)")
    a.add_argument("name", help="the mine's name")
    a = asub.add_parser("set-status", help="change a mine's status and order")
    a.add_argument("mine", help="mine code")
    order_args(a, None)
    a = asub.add_parser("add-gateway", help="register a gateway of a mine")
    a.add_argument("--mine", required=True, help="mine code")
    a.add_argument("site", help="the gateway's [site] name")
    a.add_argument("gateway", help="the gateway's name (its [site] gateway key)")
    a = asub.add_parser("add-user", help="add a user")
    a.add_argument("name", help="the user's login name")
    a.add_argument(
        "--role",
        required=True,
        choices=("admin", "regulator", "operator", "viewer", "contractor"),
        help="what the user may do (docs/platform.md)",
    )
    area = a.add_mutually_exclusive_group()
    for level in ("region", "city", "county", "mine"):
        area.add_argument(f"--{level}", metavar="CODE", help=f"the user's area: a {level}")
    pw = a.add_mutually_exclusive_group()
    pw.add_argument("--password", action="store_true", help="ask for a password (web login)")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a = asub.add_parser("issue-token", help="issue an API token (printed once)")
    a.add_argument("user", help="the user's login name")
    a.add_argument("--label", default="", help="what the token is for")
    a.add_argument("--days", type=float, help="expires after this many days")
    a = asub.add_parser("revoke-tokens", help="revoke every token of a user, end their sessions")
    a.add_argument("user", help="the user's login name")
    a = asub.add_parser("disable-user", help="revoke-tokens, and no login any more")
    a.add_argument("user", help="the user's login name")
    a = asub.add_parser("assign-contractor", help="assign a contractor to a mine")
    a.add_argument("user", help="the contractor's user name")
    a.add_argument("mine", help="the mine's code")
    a.add_argument("--remove", action="store_true", help="end the assignment instead")
    a = asub.add_parser("list", help="list registry rows or users")
    a.add_argument(
        "what",
        choices=("regions", "cities", "counties", "mines", "gateways", "users", "audit"),
        help="what to list",
    )
    admin.set_defaults(func=cmd_admin)
