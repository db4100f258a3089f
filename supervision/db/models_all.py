"""Import every domain's tables, so ``Base.metadata`` is complete (for
Alembic and for the tests comparing migrations with the models)."""

from supervision.alerting import models as alerting_models
from supervision.audit import models as audit_models
from supervision.auth import models as auth_models
from supervision.db import lease as lease_models
from supervision.db.base import Base
from supervision.ingest import models as ingest_models
from supervision.jobs import models as jobs_models
from supervision.notify import models as notify_models
from supervision.registry import models as registry_models
from supervision.uploads import models as uploads_models

__all__ = [
    "Base",
    "alerting_models",
    "audit_models",
    "auth_models",
    "ingest_models",
    "jobs_models",
    "lease_models",
    "notify_models",
    "registry_models",
    "uploads_models",
]
