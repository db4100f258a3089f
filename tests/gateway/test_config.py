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
