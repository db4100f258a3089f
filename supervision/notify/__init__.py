"""Notify: alert events out to receivers, after evaluation (ARCHITECTURE.md
lesson 15). Rules only write alert events; this package reads them in order
with a cursor per receiver, runs them through a pipeline of stages
(event filter, area filter, muters), and keeps a delivery per receiver and
event, sent with retries; the ones that never get through are dead letters,
kept and visible. Receivers: webhooks (JSON, HMAC-SHA256 signature),
e-mail (SMTP) and an MQTT alerts topic.
"""
