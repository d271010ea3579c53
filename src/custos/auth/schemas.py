from __future__ import annotations

from pydantic import Field, model_validator

from custos.kit.schemas import Schema


class LoginRequest(Schema):
    email: str | None = Field(None, max_length=320, examples=["admin@acme.example"])
    username: str | None = Field(
        None, max_length=320, description="Seed-era clients send the email as `username`"
    )
    password: str = Field(min_length=1, max_length=256)
    tenant: str | None = Field(
        None, max_length=63, description="Tenant slug, needed when the email exists in several"
    )

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginRequest:
        if not (self.email or self.username):
            raise ValueError("give `email` (or `username`)")
        return self

    @property
    def identifier(self) -> str:
        return (self.email or self.username or "").strip().lower()


class RefreshRequest(Schema):
    refresh_token: str = Field(min_length=1, max_length=256)


class PasswordChange(Schema):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=12, max_length=256)


class TokenPair(Schema):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None


class Me(Schema):
    kind: str
    id: str
    tenant_id: str
    tenant_slug: str
    role: str | None
    scopes: list[str]
    email: str | None = None
    full_name: str | None = None
    customer_id: str | None = None
    session_id: str | None = None
