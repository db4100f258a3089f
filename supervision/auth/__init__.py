"""Users, roles, API tokens and web sessions; the scope every query obeys."""
