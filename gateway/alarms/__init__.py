"""Safety alarms at the gateway (docs/alarms.md): rules, a small expression
language, the ISA-18.2 state machine, the engine, defaults per location
class, and the service that runs them inside the gateway."""
