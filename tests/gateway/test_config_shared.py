"""Devices of one profile share its parsed profile and read plan (a site of
2,000 devices parsed the same file 2,000 times); overrides get their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config

PROFILES = Path(__file__).resolve().parents[2] / "bench" / "gateway_profiles"


def _site(tmp_path: Path, devices: str) -> Path:
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\nname = "s"\ngateway = "g"\ndata_dir = "{tmp_path}/data"\n'
        f'profile_dirs = ["{PROFILES}"]\n\n'
        '[[buses]]\nname = "b"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 5020\n\n' + devices
    )
    return site


def _dev(i: int, extra: str = "", profile: str = "bench_holding10") -> str:
    return f'[[devices]]\nname = "d{i}"\nbus = "b"\nunit = {i}\nprofile = "{profile}"\n{extra}\n'


def test_one_plan_per_profile_and_overrides(tmp_path: Path) -> None:
    over = "[devices.points.r003]\ndeadband = 5\n"
    cfg = load_config(_site(tmp_path, "".join(_dev(i) for i in range(1, 6)) + _dev(6, over)))
    plain, special = cfg.devices[:5], cfg.devices[5]
    assert len({id(d.profile) for d in cfg.devices}) == 1
    assert len({id(d.plan) for d in plain}) == 1
    assert special.plan is not plain[0].plan
    assert special.plan is not None and plain[0].plan is not None
    db = {p.name: p.deadband for p in special.plan.points}
    assert db["r003"] == 5 and {p.name: p.deadband for p in plain[0].plan.points}["r003"] == 0


def test_a_missing_profile_is_reported_for_every_device(tmp_path: Path) -> None:
    site = _site(tmp_path, _dev(1, profile="nope") + _dev(2, profile="nope") + _dev(3))
    with pytest.raises(ConfigError) as err:
        load_config(site)
    where = [e.key for e in err.value.errors]
    assert where == ["devices[0].profile", "devices[1].profile"]
