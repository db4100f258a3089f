"""Who changed what in the registry and the users, and when."""
