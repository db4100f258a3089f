"""Production machinery: a mine hoist (winder) and a crusher.

These are what the suspended-mine watch looks for (a mine under a
suspension order that hoists ore or crushes rock is producing), so they
behave as the real machines do on the values a regulator sees:

* :class:`Hoist`: a double-drum skip winder in a vertical shaft. Started, it
  winds trip after trip: accelerates to full speed, runs, decelerates to
  the tipping point, dwells while the skips load and tip, then winds back
  the other way. Motor power follows the load (the loaded skip rising plus
  the inertia of the whole system while accelerating), so a running hoist
  shows on its feeder's power meter. A trip (``fault``) applies the brakes
  where the skip is and counts in ``trips``.
* :class:`Crusher`: a jaw crusher at a quarry or open pit. Running, it
  draws its idle current; the feed (t/h) loads the motor and shows as
  ``throughput`` after the chamber fills; ``total_tonnes`` integrates it.

Both start stopped unless ``running=True``; stopped, they draw nothing and
use no random numbers (a mine without them, or with them idle, runs the
same seeded sequence as before they existed). Time advances only by
``dt_s``; motion is integrated in steps of at most :data:`HOIST_STEP_S`.
"""

from __future__ import annotations

import math
import random

from drivers.types import Value
from simulators.equipment import SQRT3, Airways, Equipment, Supply, approach

G = 9.81
HOIST_STEP_S = 0.1


class Hoist(Equipment):
    """Skip winder. ``position`` is skip 1's depth below the tipping point
    (m: 0 at the top, ``shaft_depth_m`` at the loading pocket); ``speed``
    the rope speed (m/s, always >= 0); ``direction`` +1 while skip 1 goes
    down, -1 up, 0 stopped."""

    kind = "hoist"
    actions = frozenset({"running", "fault", "payload_t"})

    def __init__(
        self,
        name: str,
        *,
        shaft_depth_m: float = 420.0,
        max_speed: float = 8.0,  # m/s
        acceleration: float = 0.8,  # m/s2, and the same deceleration
        dwell_s: float = 12.0,  # loading and tipping at the ends of a trip
        payload_t: float = 9.0,  # ore in a loaded skip
        equivalent_mass_t: float = 60.0,  # skips, ropes, drums, sheaves, rotor
        efficiency: float = 0.9,
        idle_kw: float = 15.0,  # brakes' hydraulics, lubrication, fans
        nominal_v: float = 6000.0,
        power_factor: float = 0.85,
        running: bool = False,
        trips: int = 3,
        cycles: int = 184_200,
    ) -> None:
        super().__init__(name)
        if shaft_depth_m <= 0 or max_speed <= 0 or acceleration <= 0:
            raise ValueError(f"hoist {name!r}: depth, speed and acceleration must be > 0")
        self.depth = shaft_depth_m
        self.max_speed = max_speed
        self.acceleration = acceleration
        self.dwell_s = dwell_s
        self.equivalent_kg = equivalent_mass_t * 1000.0
        self.efficiency = efficiency
        self.idle_kw = idle_kw
        self.nominal_v = nominal_v
        self.power_factor = power_factor
        self.position = shaft_depth_m  # skip 1 at the loading pocket
        self.direction = -1  # its next trip is up
        self.speed = 0.0
        self.dwell_left = 0.0
        self.power_kw = 0.0
        self.q.update(running=running, fault=0, trips=trips, cycles=cycles, payload_t=payload_t)
        self._publish(None)

    def act(self, quantity: str, value: Value) -> None:
        if quantity == "payload_t":
            super().act(quantity, float(value))
            return
        super().act(quantity, int(value) if quantity == "fault" else bool(value))
        if quantity == "fault" and value:
            # the safety circuit opens: brakes on where the skip is
            self.q["running"] = False
            self.q["trips"] = int(self.q["trips"]) + 1
            self.speed = 0.0
        if quantity == "running" and value:
            self.q["fault"] = 0  # a start is a reset of the safety circuit

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        if self.name in supply.unpowered and self.q["running"]:
            self.act("fault", 1)  # loss of supply trips the winder
        running = bool(self.q["running"])
        if not running and self.speed == 0.0:
            self.power_kw = 0.0
            self._publish(None)
            return
        if dt_s <= 0.0:
            self._publish(None)
            return
        energy_kj = 0.0
        n = max(1, math.ceil(dt_s / HOIST_STEP_S))
        h = dt_s / n
        for _ in range(n):
            energy_kj += self._advance(h, running) * h
        self.power_kw = energy_kj / dt_s
        self._publish(rng)

    def _advance(self, h: float, running: bool) -> float:
        """One small step of motion; returns the motor's power (kW)."""
        if self.speed == 0.0 and self.dwell_left > 0.0:
            self.dwell_left = max(0.0, self.dwell_left - h)
            return self.idle_kw
        if self.speed == 0.0 and not running:
            return 0.0
        target = 0.0 if self.direction < 0 else self.depth
        remaining = abs(target - self.position)
        braking = self.speed**2 / (2.0 * self.acceleration)
        if not running or remaining <= braking + 1e-6:
            acc = -self.acceleration
        elif self.speed < self.max_speed:
            acc = min(self.acceleration, (self.max_speed - self.speed) / h)
        else:
            acc = 0.0
        v = self.speed + acc * h
        if running and remaining > 0.0:
            v = max(v, 0.3)  # creep into the tipping point
        v = max(v, 0.0)
        moved = min(0.5 * (self.speed + v) * h, remaining)
        self.position += self.direction * moved
        self.speed = v
        power = self._power(acc)
        if running and remaining - moved <= 1e-6:  # at the end: dwell, wind back
            self.position = target
            self.speed = 0.0
            self.direction = -self.direction
            self.dwell_left = self.dwell_s
            self.q["cycles"] = int(self.q["cycles"]) + 1
        elif not running and v == 0.0:
            self.speed = 0.0
        return power

    def _power(self, acc: float) -> float:
        """Motor power: lifting the net load (one skip loaded, the other
        empty: the rising skip is always the loaded one) and accelerating
        the system; braking energy goes to the dynamic-braking resistors."""
        payload_kg = float(self.q["payload_t"]) * 1000.0
        mech_w = (payload_kg * G + self.equivalent_kg * acc) * self.speed
        return max(mech_w / 1000.0 / self.efficiency, 0.0) + self.idle_kw

    def _publish(self, rng: random.Random | None) -> None:
        noise = 1.0 + (rng.gauss(0.0, 0.004) if rng is not None else 0.0)
        kw = self.power_kw * noise
        current = kw * 1000.0 / (SQRT3 * self.nominal_v * self.power_factor)
        if self.q["running"] and kw > 0:
            current = max(current, 6.0)  # magnetising current of a running drive
        self.q.update(
            speed=self.speed,
            position=self.position,
            direction=0 if self.speed == 0.0 else self.direction,
            motor_power=kw,
            motor_current=current,
        )

    def electrical_kw(self) -> float:
        return self.power_kw


class Crusher(Equipment):
    """Jaw crusher with its feeder. ``feed`` (t/h) is what the feeder
    delivers while the crusher runs; ``throughput`` follows it with the
    chamber's lag, and the motor's current follows the throughput."""

    kind = "crusher"
    actions = frozenset({"running", "fault", "feed"})

    def __init__(
        self,
        name: str,
        *,
        rated_throughput: float = 350.0,  # t/h
        rated_kw: float = 160.0,
        idle_fraction: float = 0.3,  # of rated power, running empty
        nominal_v: float = 380.0,
        power_factor: float = 0.86,
        feed: float = 280.0,  # t/h once running
        chamber_s: float = 20.0,  # lag from feed to product
        running: bool = False,
        total_tonnes: float = 1_482_310.0,
    ) -> None:
        super().__init__(name)
        self.rated_throughput = rated_throughput
        self.rated_kw = rated_kw
        self.idle_fraction = idle_fraction
        self.nominal_v = nominal_v
        self.power_factor = power_factor
        self.chamber_s = chamber_s
        self.throughput = 0.0
        self.total = total_tonnes
        self.motor_temp = 35.0
        self.q.update(running=running, fault=0, feed=feed)
        self._publish(None)

    def act(self, quantity: str, value: Value) -> None:
        if quantity == "feed":
            super().act(quantity, max(float(value), 0.0))
            return
        super().act(quantity, int(value) if quantity == "fault" else bool(value))
        if quantity == "fault" and value:
            self.q["running"] = False
        if quantity == "running" and value:
            self.q["fault"] = 0

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        if self.name in supply.unpowered:
            self.q["running"] = False
        running = bool(self.q["running"])
        feed = min(float(self.q["feed"]), self.rated_throughput * 1.1) if running else 0.0
        # a stopped jaw discharges nothing: the product belt empties at once
        self.throughput = approach(self.throughput, feed, self.chamber_s, dt_s) if running else 0.0
        self.total += self.throughput * dt_s / 3600.0
        load = self.electrical_kw() / self.rated_kw
        self.motor_temp = approach(self.motor_temp, 30.0 + 45.0 * load, 900.0, dt_s)
        self._publish(rng if running else None)

    def _publish(self, rng: random.Random | None) -> None:
        noise = 1.0 + (rng.gauss(0.0, 0.02) if rng is not None else 0.0)
        kw = self.electrical_kw() * noise
        self.q.update(
            throughput=max(self.throughput * noise, 0.0),
            motor_current=kw * 1000.0 / (SQRT3 * self.nominal_v * self.power_factor),
            motor_power=kw,
            motor_temperature=self.motor_temp,
            total_tonnes=self.total,
        )

    def electrical_kw(self) -> float:
        if not self.q["running"]:
            return 0.0
        share = min(self.throughput / self.rated_throughput, 1.2)
        return self.rated_kw * (self.idle_fraction + (1.0 - self.idle_fraction) * share)
