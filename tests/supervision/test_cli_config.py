"""``minegate platform ...`` and platform.toml: errors name the file, line
and key; serve refuses a public address without TLS; admin builds the
registry and prints a token once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.cli import main
from supervision.config import PlatformConfigError, load_config, parse_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "platform.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[mqtt]\nprot = 1883\n", "platform.toml:2: mqtt.prot: unknown key"),
        ("[server]\n\nport = 'eighty'\n", "platform.toml:3: server.port: Input should be a valid integer"),
        ("[server]\nport = 70000\n", "platform.toml:2: server.port: Input should be less than or equal to 65535"),
        ("[server]\ntls_cert = 'a.pem'\n", "platform.toml:1: server: give both tls_cert and tls_key"),
        ("[alerting.suspended_watch]\npower_margin_kw = -1\n", "platform.toml:2: alerting.suspended_watch.power_margin_kw"),
        ("[mqtt]\nshared_group = 'a/b'\n", "shared_group must not contain"),
        ("[server\n", "platform.toml: not valid TOML"),
    ],
)  # fmt: skip
def test_config_errors_name_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(PlatformConfigError) as info:
        load_config(write(tmp_path, text))
    assert any(expected in e.replace(str(tmp_path) + "/", "") for e in info.value.errors), (
        info.value.errors
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(PlatformConfigError) as info:
        load_config(write(tmp_path, "[server]\nport = 0\n[mqtt]\nport = 0\nfoo = 1\n"))
    assert len(info.value.errors) == 3


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[database]\nurl = "sqlite:///data/p.db"\n'))
    assert cfg.database.url == f"sqlite:///{tmp_path}/data/p.db"


@pytest.mark.parametrize(
    ("server", "refused"),
    [
        ({"host": "127.0.0.1"}, False),
        ({"host": "::1"}, False),
        ({"host": "localhost"}, False),
        ({"host": "0.0.0.0"}, True),
        ({"host": "192.0.2.7"}, True),
        ({"host": "0.0.0.0", "behind_reverse_proxy": True}, False),
        ({"host": "0.0.0.0", "tls_cert": "c.pem", "tls_key": "k.pem"}, False),
    ],
)
def test_listen_rule(server: dict[str, object], refused: bool) -> None:
    lines = "\n".join(f"{k} = {v!r}".replace("True", "true") for k, v in server.items())
    cfg = parse_config(f"[server]\n{lines}\n")
    assert (cfg.listen_problem() is not None) == refused


def test_serve_refuses_a_public_address_without_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path, '[server]\nhost = "0.0.0.0"\n')
    assert main(["platform", "serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert (
        "server.host: '0.0.0.0' is not a loopback address" in err and "behind_reverse_proxy" in err
    )
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_bad_config_exits_2_with_the_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path, "[mqtt]\nprot = 1\n")
    assert main(["platform", "migrate", "--config", str(cfg)]) == 2
    assert "platform.toml:2: mqtt.prot: unknown key" in capsys.readouterr().err


def test_admin_builds_the_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = str(write(tmp_path, '[database]\nurl = "sqlite:///p.db"\n'))

    def admin(*argv: str) -> int:
        return main(["platform", "admin", "--config", cfg, *argv])

    assert main(["platform", "migrate", "--config", cfg]) == 0
    from supervision.db.migrate import MIGRATIONS

    newest = max(f.name[:4] for f in (MIGRATIONS / "versions").glob("0*.py"))
    assert f"database at revision {newest}" in capsys.readouterr().out
    assert admin("add-region", "GX", "Guangxi") == 0
    assert admin("add-city", "--region", "GX", "QZ", "Qinzhou") == 0
    assert admin("add-county", "--city", "QZ", "QN", "Qinnan") == 0
    assert admin("add-mine", "--county", "QN", "--status", "suspended", "--order-no", "7",
                 "--order-from", "2026-11-01", "--baseline-kw", "50", "M1", "Mine one") == 0  # fmt: skip
    assert admin("add-gateway", "--mine", "M1", "qn1", "gw01") == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert (
        admin("add-user", "reg", "--role", "regulator", "--county", "QN", "--password-stdin") == 0
    )
    capsys.readouterr()
    assert admin("issue-token", "reg", "--label", "phone") == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("mgp_") and len(token) > 40
    assert admin("list", "mines") == 0
    assert capsys.readouterr().out == "M1\tMine one\tsuspended\tcounty QN\torder 7 2026-11-01..\n"
    assert admin("list", "users") == 0
    assert capsys.readouterr().out.startswith("reg\tregulator\tcounty 1\tactive")
    assert admin("list", "gateways") == 0
    assert capsys.readouterr().out == "qn1/gw01\tmine M1\n"
    # mistakes: a clear message and exit 2, nothing half-done
    assert admin("add-city", "--region", "XX", "C2", "City") == 2
    assert "no region with code 'XX'" in capsys.readouterr().err
    assert admin("add-gateway", "--mine", "M1", "qn1", "gw01") == 2
    assert "registered already" in capsys.readouterr().err
    assert admin("add-user", "op", "--role", "operator", "--county", "QN") == 2
    assert "an operator's area is one mine" in capsys.readouterr().err
    assert admin("set-status", "M1", "--status", "producing") == 0
    admin("list", "mines")
    assert capsys.readouterr().out == "M1\tMine one\tproducing\tcounty QN\n"


def test_migrate_makes_the_sqlite_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path, "")  # the default: sqlite:///data/platform.db next to the file
    assert main(["platform", "migrate", "--config", str(cfg)]) == 0
    assert (tmp_path / "data" / "platform.db").is_file()


def test_unreachable_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .conftest import servers

    port = servers.free_port()
    cfg = write(tmp_path, f'[database]\nurl = "postgresql://u:secret@127.0.0.1:{port}/db"\n')
    assert main(["platform", "migrate", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"database postgresql+psycopg://u:***@127.0.0.1:{port}/db" in err and "secret" not in err


def test_revoke_and_disable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A revoked token and a disabled user are refused by the running app."""
    from fastapi.testclient import TestClient

    from supervision.app import create_app
    from supervision.config import load_config

    cfg_path = write(tmp_path, '[database]\nurl = "sqlite:///p.db"\n[mqtt]\nenabled = false\n')
    cfg = str(cfg_path)

    def admin(*argv: str) -> int:
        return main(["platform", "admin", "--config", cfg, *argv])

    assert admin("add-user", "boss", "--role", "admin") == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert admin("add-user", "ops", "--role", "admin", "--password-stdin") == 0
    capsys.readouterr()
    assert admin("issue-token", "boss") == 0
    token = capsys.readouterr().out.strip()
    with TestClient(create_app(load_config(cfg_path), background=False)) as c:

        def me(tok: str) -> int:
            return c.get("/api/v1/me", headers={"Authorization": f"Bearer {tok}"}).status_code

        assert me(token) == 200
        assert admin("revoke-tokens", "boss") == 0
        assert capsys.readouterr().out == "boss: 1 token(s) revoked, web sessions ended\n"
        assert me(token) == 401
        assert c.post("/login", data={"username": "ops", "password": "a long password"},
                      follow_redirects=False).status_code == 303  # fmt: skip
        assert c.get("/", follow_redirects=False).status_code == 200
        assert admin("disable-user", "ops") == 0
        assert c.get("/", follow_redirects=False).status_code == 303  # session ended
        assert (
            c.post("/login", data={"username": "ops", "password": "a long password"}).status_code
            == 401
        )
    assert admin("revoke-tokens", "nobody") == 2
    assert "no user 'nobody'" in capsys.readouterr().err


def test_the_documented_example_is_valid() -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "platform.md").read_text(encoding="utf-8")
    section = doc[doc.index("## platform.toml") :]
    m = re.search(r"```toml\n(.*?)\n```", section, re.S)
    assert m, "no toml example under '## platform.toml'"
    cfg = parse_config(m.group(1), "docs/platform.md")
    assert [r.name for r in cfg.notify.receivers] == ["qinnan-duty", "city-mail", "control-room"]
    assert cfg.server.page_refresh_s == 15 and cfg.mqtt.shared_group == "minegate-platform"


def test_the_documented_uploads_example_is_valid() -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "uploads.md").read_text(encoding="utf-8")
    section = doc[doc.index("## platform.toml") :]
    m = re.search(r"```toml\n(.*?)\n```", section, re.S)
    assert m, "no toml example under '## platform.toml'"
    cfg = parse_config(m.group(1), "docs/uploads.md", Path("/srv/platform"))
    assert cfg.uploads.dir == Path("/srv/platform/data/uploads")
    assert cfg.uploads.max_mb == {"contractor": 20480, "admin": 20480}
    assert cfg.jobs.engine == "embedded" and cfg.jobs.lease_s == 60


def test_admin_assigns_contractors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write(tmp_path, '[database]\nurl = "sqlite:///p.db"\n[jobs]\nengine = "dramatiq"\n'))

    def admin(*argv: str) -> int:
        return main(["platform", "admin", "--config", cfg, *argv])

    assert admin("add-region", "GX", "Guangxi") == 0
    assert admin("add-city", "--region", "GX", "QZ", "Qinzhou") == 0
    assert admin("add-county", "--city", "QZ", "QN", "Qinnan") == 0
    assert admin("add-mine", "--county", "QN", "M1", "Mine one") == 0
    assert admin("add-user", "reg", "--role", "regulator", "--county", "QN") == 0
    assert admin("add-user", "co", "--role", "contractor", "--county", "QN") == 2
    assert "a contractor has no area" in capsys.readouterr().err
    assert admin("add-user", "co", "--role", "contractor") == 0
    assert admin("assign-contractor", "co", "M1") == 0
    assert capsys.readouterr().out == "co: assigned to M1\n"
    assert admin("assign-contractor", "co", "M1") == 0
    assert capsys.readouterr().out == "co: assigned to M1 (already)\n"
    assert admin("list", "users") == 0
    assert "co\tcontractor\tmines M1\tactive" in capsys.readouterr().out
    assert admin("assign-contractor", "reg", "M1") == 2
    assert "no contractor named 'reg'" in capsys.readouterr().err
    assert admin("assign-contractor", "co", "M9") == 2
    assert "no mine with code 'M9'" in capsys.readouterr().err
    assert admin("assign-contractor", "co", "M1", "--remove") == 0
    assert capsys.readouterr().out == "co: no longer assigned to M1\n"
    # a worker needs jobs.engine = "dramatiq" and a reachable Redis: the
    # engine is checked first
    (tmp_path / "b").mkdir()
    cfg2 = str(write(tmp_path / "b", '[database]\nurl = "sqlite:///p.db"\n'))
    assert main(["platform", "worker", "--config", cfg2]) == 2
    assert 'set jobs.engine = "dramatiq"' in capsys.readouterr().err
