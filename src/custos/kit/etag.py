"""ETags of versioned resources (`"<id>.<version>"`) and the If-Match check on updates."""

from __future__ import annotations

from typing import Protocol

from custos.exceptions import PreconditionFailed


class Versioned(Protocol):
    id: str
    version: int


def etag(resource: Versioned) -> str:
    return f'"{resource.id}.{resource.version}"'


def check_if_match(resource: Versioned, if_match: str | None, *, what: str = "resource") -> None:
    """412 unless If-Match is absent, `*`, or names the resource's current ETag."""
    if if_match is None or if_match.strip() == "*":
        return
    wanted = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if etag(resource) not in wanted:
        raise PreconditionFailed(
            f"The {what} changed since you read it: fetch it again and retry with its ETag"
        )
