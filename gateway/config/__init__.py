"""The site configuration (docs/configuration.md).

``load_config(path)`` is the only way the runtime gets its configuration:
``load`` parses and checks the file against ``schema`` (locating every
problem with ``tomlpos``) and compiles it into the frozen objects of
``site``.
"""

from gateway.config.load import load_config
from gateway.config.site import CompiledDevice, ConfigError, ConfigIssue, SiteConfig

__all__ = [
    "CompiledDevice",
    "ConfigError",
    "ConfigIssue",
    "SiteConfig",
    "load_config",
]
