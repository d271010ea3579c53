from __future__ import annotations

from datetime import datetime

from pydantic import EmailStr, Field, field_validator

from custos.auth.scopes import Role
from custos.kit.schemas import Schema

Password = Field(min_length=12, max_length=256, description="At least 12 characters")


def _lower(value: str | None) -> str | None:
    return value.lower() if value else value


class UserCreate(Schema):
    email: EmailStr
    password: str = Password
    full_name: str | None = Field(None, max_length=200)
    role: Role = Role.viewer
    customer_id: str | None = Field(
        None, max_length=40, description="For the customer role: the record they may see"
    )

    _email = field_validator("email")(_lower)


class UserUpdate(Schema):
    full_name: str | None = Field(None, max_length=200)
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(None, min_length=12, max_length=256)
    customer_id: str | None = Field(None, max_length=40)


class User(Schema):
    id: str
    tenant_id: str
    email: str
    full_name: str | None
    role: Role
    is_active: bool
    is_platform_admin: bool
    customer_id: str | None
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime
