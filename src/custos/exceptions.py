"""One error base; one handler renders every error as RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any, ClassVar


class CustosError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    slug: ClassVar[str] = "internal-error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        # Extra problem members (RFC 9457 §3.2), e.g. OAuth's `error`.
        self.extensions = extensions or {}
        self.status_code = status or type(self).status
        super().__init__(self.detail)


class BadRequest(CustosError):
    status = 400
    title = "Bad Request"
    slug = "bad-request"


class Unauthorized(CustosError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="custos"'})


class Forbidden(CustosError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


class NotFound(CustosError):
    status = 404
    title = "Not Found"
    slug = "not-found"


class Conflict(CustosError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class PreconditionFailed(CustosError):
    status = 412
    title = "Precondition Failed"
    slug = "precondition-failed"


class PayloadTooLarge(CustosError):
    status = 413
    title = "Payload Too Large"
    slug = "payload-too-large"


class InvalidInput(CustosError):
    status = 422
    title = "Unprocessable Content"
    slug = "validation-error"


class TooManyRequests(CustosError):
    status = 429
    title = "Too Many Requests"
    slug = "rate-limited"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: int,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            detail, headers={"Retry-After": str(max(1, retry_after))}, extensions=extensions
        )
        self.retry_after = retry_after


class DatabaseUnavailable(CustosError):
    status = 503
    title = "Service Unavailable"
    slug = "database-unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The database connection was lost; retry the request", headers={"Retry-After": "1"}
        )


class OAuthError(CustosError):
    """RFC 6749 §5.2 errors: problem+json that also carries `error` and `error_description`."""

    status = 400
    title = "OAuth Error"
    slug = "oauth-error"

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        headers = {"WWW-Authenticate": 'Basic realm="custos"'} if status == 401 else None
        super().__init__(
            description,
            headers=headers,
            status=status,
            extensions={"error": error, "error_description": description},
        )


class ServiceUnavailable(CustosError):
    status = 503
    title = "Service Unavailable"
    slug = "unavailable"


def problem_type(slug: str) -> str:
    return f"urn:custos:problem:{slug}"
