from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, Field, field_validator

from custos.customer.schemas import MAX_TAGS, check_metadata, clean_tags
from custos.kit.schemas import Schema

MAX_CONTENT_CHARS = 10_000
MAX_BATCH = 1000


class FeedbackType(StrEnum):
    bug_report = "bug_report"
    feature_request = "feature_request"
    general_feedback = "general_feedback"
    complaint = "complaint"
    praise = "praise"


class FeedbackSource(StrEnum):
    api = "api"
    web_form = "web_form"
    email = "email"
    chat = "chat"
    import_ = "import"


class FeedbackStatus(StrEnum):
    new = "new"
    triaged = "triaged"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"


class SentimentLabel(StrEnum):
    positive = "positive"
    neutral = "neutral"
    negative = "negative"


class FeedbackCreate(Schema):
    customer_id: str | None = Field(
        None, max_length=40, examples=["cus_01JD4Z7RZ7Q4M1V3YV1B8K3T6E"]
    )
    feedback_type: FeedbackType = FeedbackType.general_feedback
    subject: str | None = Field(None, max_length=200)
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS)
    source: FeedbackSource = FeedbackSource.api
    rating: int | None = Field(None, ge=1, le=5)
    status: FeedbackStatus = FeedbackStatus.new
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: dict[str, Any] = Field(default_factory=dict)
    received_at: AwareDatetime | None = Field(None, description="Defaults to now")

    _tags = field_validator("tags")(clean_tags)
    _metadata = field_validator("metadata")(check_metadata)


class FeedbackPatch(Schema):
    status: FeedbackStatus | None = None
    tags: list[str] | None = Field(None, max_length=MAX_TAGS)

    _tags = field_validator("tags")(clean_tags)


class Feedback(Schema):
    id: str
    customer_id: str | None
    feedback_type: FeedbackType
    subject: str | None
    content: str
    source: FeedbackSource
    rating: int | None
    status: FeedbackStatus
    tags: list[str]
    metadata: dict[str, Any] = Field(validation_alias="attributes")
    received_at: datetime
    sentiment_score: float = Field(description="VADER compound score, -1 to 1")
    sentiment_label: SentimentLabel
    duplicate_of_id: str | None = Field(description="The original this re-submits or copies")
    duplicate_kind: str | None = Field(description="exact or near")
    similarity: float | None = Field(description="Estimated similarity to the original")
    created_at: datetime
    updated_at: datetime
    version: int


class FeedbackBatch(Schema):
    # Items are validated one by one, so one bad item is reported by its index.
    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class ItemError(Schema):
    index: int = Field(description="Position in the batch, or the row number in a file")
    errors: list[dict[str, Any]]


class IngestResult(Schema):
    created: int
    duplicates: int = Field(description="Created items that re-submit or copy an earlier one")
    failed: int
    ids: list[str] = Field(description="Created ids, in input order")
    errors: list[ItemError]


class CountByKey(Schema):
    key: str
    count: int


class DailyPoint(Schema):
    day: str
    count: int
    average_sentiment: float | None
    average_rating: float | None


class FeedbackStats(Schema):
    total: int
    by_type: dict[str, int]
    by_status: dict[str, int]
    by_source: dict[str, int]
    sentiment: dict[str, int]
    average_rating: float | None
    average_sentiment: float | None
    duplicates: int
    daily: list[DailyPoint]


EXAMPLE_FEEDBACK = Feedback.model_validate(
    {
        "id": "fb_01KAY2D4E6F8G0H2J4K6M8N0P2",
        "customer_id": "cus_01KAY1S6W3Z4T7X2M9QJ5N8B6C",
        "feedback_type": "complaint",
        "subject": "Late delivery",
        "content": "My order arrived two weeks late and nobody answered my emails.",
        "source": "web_form",
        "rating": 2,
        "status": "new",
        "tags": ["delivery"],
        "attributes": {"order": "A-10442"},
        "received_at": "2026-11-22T08:15:40Z",
        "sentiment_score": -0.4767,
        "sentiment_label": "negative",
        "duplicate_of_id": None,
        "duplicate_kind": None,
        "similarity": None,
        "created_at": "2026-11-22T08:15:42Z",
        "updated_at": "2026-11-22T08:15:42Z",
        "version": 1,
    }
)


class FeedbackCreatedPayload(Schema):
    """The `feedback.created` event's payload."""

    feedback: Feedback


class FeedbackUpdatedPayload(Schema):
    feedback: Feedback
    changed_fields: list[str]
