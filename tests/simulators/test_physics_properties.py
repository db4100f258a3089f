"""Property tests: whatever an operator does, in whatever order and with
whatever time steps, the physics stays physical and every value still fits
the registers its profile gives it (a value that cannot be encoded would
leave a device serving stale words)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import codec
from drivers.profile import find_profile
from simulators.physics import DEFAULT_ENTITIES, MinePhysics

ACTIONS = [
    ("main_fan_1", "running"),
    ("main_fan_2", "running"),
    ("main_fan_1", "fault"),
    ("aux_fan_1", "running"),
    ("drainage_1", "pump1_running"),
    ("drainage_1", "pump2_running"),
    ("drainage_2", "pump1_running"),
    ("drainage_1", "auto"),
    ("power_meter_1", "breaker_tripped"),
    ("power_meter_1", "breaker_closed"),
    ("power_meter_2", "breaker_tripped"),
    ("fire_water_1", "deluge_valve_open"),
    ("fire_water_1", "valve1_open"),
    ("smoke_1", "fire"),
    ("gas_monitor_1", "sensor_fault"),
]
NON_NEGATIVE = {
    "airflow",
    "wind_speed",
    "negative_pressure",
    "motor_current",
    "sump_level",
    "discharge_flow",
    "ch4",
    "co",
    "o2",
    "co2",
    "no2",
    "h2s",
    "humidity",
    "active_power",
    "obscuration",
    "main_pressure",
    "tank_level",
}
PROFILES = {name: find_profile(spec.kind) for name, spec in DEFAULT_ENTITIES.items()}

step = st.tuples(
    st.sampled_from(ACTIONS),
    st.booleans(),
    st.floats(min_value=0.0, max_value=900.0, allow_nan=False),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=10_000), st.lists(step, min_size=1, max_size=12))
def test_operations_keep_the_mine_physical_and_encodable(
    seed: int, steps: list[tuple[tuple[str, str], bool, float]]
) -> None:
    mine = MinePhysics(seed=seed)
    energy = float(mine.get("power_meter_1", "active_energy"))
    for (entity, quantity), on, dt in steps:
        value: float | bool = (0.7 if on else 0.0) if quantity == "fire" else on
        if quantity == "fault":
            value = 12 if on else 0
        mine.set(entity, quantity, value)
        mine.step(dt)
        for name in mine.entities:
            values = mine.snapshot(name)
            for key, v in values.items():
                if isinstance(v, float):
                    assert math.isfinite(v), (name, key, v)
                    if key in NON_NEGATIVE or key.endswith("_current"):
                        assert v >= 0.0, (name, key, v)
            for point in PROFILES[name].points:
                v = values[point.sim or point.name]
                if PROFILES[name].protocol == "modbus":
                    codec.encode(v, point)  # raises if the register cannot hold it
        # Energy counters only ever count up.
        now = float(mine.get("power_meter_1", "active_energy"))
        assert now >= energy
        energy = now
    assert float(mine.get("gas_monitor_1", "o2")) <= 21.0
