"""The gateways' MQTT messages in: latest values, alarms, gateway liveness."""
