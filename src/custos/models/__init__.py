"""ORM models, one module per table. Importing this package registers them all."""

from custos.models.api_key import ApiKey
from custos.models.audit_log import AuditHead, AuditLog
from custos.models.auth_session import AuthSession, RefreshToken
from custos.models.base import Base, TenantOwned
from custos.models.bulk_operation import BulkOperation, BulkOperationError
from custos.models.consent import Consent
from custos.models.customer import Customer
from custos.models.customer_merge import CustomerMerge
from custos.models.customer_note import CustomerNote
from custos.models.customer_stat_increment import CustomerStatIncrement
from custos.models.event import Event
from custos.models.event_outbox import EventOutbox
from custos.models.feedback import Feedback, FeedbackBand
from custos.models.idempotency_key import IdempotencyKey
from custos.models.job_outbox import JobOutbox
from custos.models.privacy_request import PrivacyRequest
from custos.models.tenant import Tenant, TenantPlan, TenantStatus
from custos.models.usage import UsageDaily, UsageRecord
from custos.models.user import User
from custos.models.webhook import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "AuditHead",
    "AuditLog",
    "AuthSession",
    "Base",
    "BulkOperation",
    "BulkOperationError",
    "Consent",
    "Customer",
    "CustomerMerge",
    "CustomerNote",
    "CustomerStatIncrement",
    "Event",
    "EventOutbox",
    "Feedback",
    "FeedbackBand",
    "IdempotencyKey",
    "JobOutbox",
    "PrivacyRequest",
    "RefreshToken",
    "Tenant",
    "TenantOwned",
    "TenantPlan",
    "TenantStatus",
    "UsageDaily",
    "UsageRecord",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
