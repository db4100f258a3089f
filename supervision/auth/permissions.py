"""What each role may do. Scope (where) is separate: see ``scope.py``."""

from __future__ import annotations

from enum import StrEnum

from supervision.auth.models import Role


class Permission(StrEnum):
    READ = "read"
    ACKNOWLEDGE = "acknowledge"  # acknowledge an alert
    SILENCE = "silence"  # silence a mine's notifications for a while
    MANAGE_REGISTRY = "manage_registry"  # areas, mines, gateways
    MANAGE_USERS = "manage_users"  # users and tokens


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.REGULATOR: frozenset({Permission.READ, Permission.ACKNOWLEDGE, Permission.SILENCE}),
    Role.OPERATOR: frozenset({Permission.READ}),
    Role.VIEWER: frozenset({Permission.READ}),
}


def allows(role: str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
