"""What each role may do. Scope (where) is separate: see ``scope.py``."""

from __future__ import annotations

from enum import StrEnum

from supervision.auth.models import Role


class Permission(StrEnum):
    READ = "read"
    ACKNOWLEDGE = "acknowledge"  # acknowledge an alert
    SILENCE = "silence"  # silence a mine's notifications for a while
    MANAGE_REGISTRY = "manage_registry"  # counties, mines, gateways in scope (regions: admins)
    MANAGE_USERS = "manage_users"  # users and tokens in scope
    OPERATE_PLATFORM = "operate_platform"  # platform-wide: ingest counters, regions, cities
    ASSIGN_CONTRACTORS = "assign_contractors"  # assign a contractor to a mine in scope
    UPLOAD = "upload"  # upload surveys for a mine in scope


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.REGULATOR: frozenset(
        {
            Permission.READ,
            Permission.ACKNOWLEDGE,
            Permission.SILENCE,
            Permission.MANAGE_REGISTRY,
            Permission.MANAGE_USERS,
            Permission.ASSIGN_CONTRACTORS,
        }
    ),
    Role.OPERATOR: frozenset({Permission.READ}),
    Role.VIEWER: frozenset({Permission.READ}),
    Role.CONTRACTOR: frozenset({Permission.READ, Permission.UPLOAD}),
}


def allows(role: str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
