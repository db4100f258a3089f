"""Regions → cities → counties → mines, and each mine's gateways."""
