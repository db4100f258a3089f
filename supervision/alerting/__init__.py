"""Alert states from rules (evaluate); notification plugs in after.

``rules.py`` turns facts (gateways' liveness, mines' orders, latest values,
gateway alarms) into the set of alerts that should be firing: a pure
function. ``service.py`` reconciles the store with that set: opens new
alerts, updates evidence, resolves the rest, and records every transition as
an :class:`~supervision.alerting.models.AlertEvent`. A notify pipeline
(grouping, inhibition, silences, receivers; not built yet) reads those
events in order with its own cursor, as Alertmanager's pipeline reads
alerts, so rules never touch delivery.
"""
