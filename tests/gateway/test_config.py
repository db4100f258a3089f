"""Configuration errors a commissioning engineer makes, as data: each folder
under ``config_cases/`` holds a ``site.toml`` and the ``expected.txt`` lines
(``site.toml:LINE: key: message`` prefixes) ``load_config`` must report."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config

CASES = Path(__file__).parent / "config_cases"
EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_config_case(case: str) -> None:
    path = CASES / case / "site.toml"
    expected = [line for line in (CASES / case / "expected.txt").read_text().splitlines() if line]
    with pytest.raises(ConfigError) as info:
        load_config(path)
    got = [str(e).replace(str(path), "site.toml") for e in info.value.errors]
    for want in expected:
        assert any(g.startswith(want) for g in got), f"missing {want!r} in:\n" + "\n".join(got)
    assert len(got) == len(expected), "\n".join(got)
    for e in info.value.errors:
        assert e.file == str(path)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_examples_are_valid(example: str) -> None:
    config = load_config(EXAMPLES / example)
    assert config.devices
    assert "OK" in config.summary()


def test_environment_variables_fill_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site.toml"
    site.write_text((CASES / "env_missing" / "site.toml").read_text())
    monkeypatch.setenv("MINEGATE_TEST_UNSET_TOKEN", "s3cret")
    config = load_config(site)
    assert config.sinks[0].token == "s3cret"  # type: ignore[union-attr]


def test_bus_load_warning_is_reported_but_not_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    text = (CASES / "serial_overload" / "site.toml").read_text()
    site.write_text(text.replace("baudrate = 1200", "baudrate = 9600").replace("0.2", "0.4"))
    config = load_config(site)
    assert config.warnings and "leaves little room for retries" in str(config.warnings[0])
    assert str(config.warnings[0]).startswith(f"{site}:8: warning: buses[0].baudrate:")
    assert 0.7 < config.bus_load["rs485"] <= 1.0


def test_addresses_that_look_like_manual_references_are_warned(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "meter.toml").write_text(
        'name = "meter"\ndescription = "a meter"\ndevice_class = "power"\n'
        '[[points]]\nname = "voltage"\nkind = "input"\naddress = 30001\ntype = "float32"\n'
        '[[points]]\nname = "setpoint"\nkind = "holding"\naddress = 40010\n'
        '[[points]]\nname = "status"\nkind = "holding"\naddress = 3\n'
    )
    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nname = "t"\nprofile_dirs = ["profiles"]\n\n'
        '[[buses]]\nname = "b"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 502\n\n'
        '[[devices]]\nname = "m1"\nbus = "b"\nunit = 1\nprofile = "meter"\n'
    )
    config = load_config(site)  # a warning, not an error: some devices do map 40001
    warned = [str(w) for w in config.warnings]
    assert len(warned) == 2, warned
    assert warned[0].startswith(f"{site}:15: warning: devices[0].profile:")
    assert "'voltage'" in warned[0] and "protocol address is 0" in warned[0]
    assert "'setpoint'" in warned[1] and "holding register 10" in warned[1]
    assert "address = 9" in warned[1]
    assert all(w in config.summary() for w in warned)


def test_no_message_shows_a_secret_or_the_password_of_a_url() -> None:
    path = CASES / "secrets_not_echoed" / "site.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "987654321" not in text and "123456789" not in text and "hunter2" not in text
    assert "sinks[0].password" in text and "sinks[1].password" in text


def test_a_password_to_a_broker_without_tls_is_warned(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    broker = (
        '[[sinks]]\nname = "{n}"\ntype = "mqtt"\nhost = "{h}"\nusername = "gw"\npassword = "pw"\n'
    )
    site.write_text(
        '[site]\nname = "t"\n\n'
        + broker.format(n="remote", h="broker.mine.local")
        + broker.format(n="local", h="127.0.0.1")  # nothing leaves the machine
        + broker.format(n="secure", h="broker.mine.local")
        + "tls = true\n"
        + '[[sinks]]\nname = "tsdb"\ntype = "influxdb_v2"\nurl = "http://influx.mine.local:8086"\n'
        'token = "t0k"\nbucket = "b"\n'
    )
    config = load_config(site)
    warned = [str(w) for w in config.warnings if "clear text" in str(w)]
    assert len(warned) == 2, warned
    assert warned[0].startswith(f"{site}:9: warning: sinks[0].password: the password goes to ")
    assert "broker.mine.local:1883" in warned[0] and "tls = true" in warned[0]
    assert "sinks[3].token" in warned[1] and "https://" in warned[1]
    assert all("'pw'" not in w and "t0k" not in w for w in warned)


def test_data_dir_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a directory\n")
    site = tmp_path / "site.toml"
    site.write_text('[site]\nname = "t"\ndata_dir = "plain/data"\n')
    with pytest.raises(ConfigError) as info:
        load_config(site)
    (issue,) = info.value.errors
    assert issue.key == "site.data_dir" and issue.line == 3
    assert f"lies under {str(tmp_path / 'plain')!r}, which is a file" in issue.message
    site.write_text('[site]\nname = "t"\ndata_dir = "not/yet/made"\n')
    assert load_config(site).data_dir == tmp_path / "not/yet/made"  # created on `run`


def test_max_mb_larger_than_the_file_system_is_warned(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nname = "t"\ndata_dir = "data/new"\n\n'
        "[store]\nmax_mb = 1e12\n\n"  # a petabyte and more: more than any test machine's disk
        '[[buses]]\nname = "b"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 502\n\n'
    )
    config = load_config(site)  # data_dir need not exist yet: its nearest parent is measured
    warned = [str(w) for w in config.warnings if "warning: store.max_mb" in str(w)]
    assert len(warned) == 1, config.warnings
    assert warned[0].startswith(f"{site}:6: warning: store.max_mb:")
    assert "exceeds the whole file system" in warned[0] and "free space" in warned[0]
    site.write_text(site.read_text().replace("1e12", "1"))
    assert not [w for w in load_config(site).warnings if "warning: store.max_mb" in str(w)]
