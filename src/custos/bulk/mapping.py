"""Columns to fields: explicit mappings, or automatic from the headers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from custos.bulk.schemas import Resource
from custos.exceptions import InvalidInput
from custos.kit.routing import NUL_REFUSED, nul_escape_at

ADDRESS_PARTS = ("line1", "line2", "city", "region", "postal_code", "country")

FIELDS: dict[Resource, tuple[str, ...]] = {
    Resource.customers: (
        "id",
        "external_id",
        "email",
        "full_name",
        "first_name",
        "last_name",
        "phone",
        "company",
        *(f"address.{part}" for part in ADDRESS_PARTS),
        "customer_type",
        "status",
        "tags",
        "metadata",
    ),
    Resource.feedback: (
        "customer_id",
        "customer_external_id",
        "customer_email",
        "feedback_type",
        "subject",
        "content",
        "source",
        "rating",
        "status",
        "tags",
        "metadata",
        "received_at",
    ),
}

# Normalised header -> field, beyond the field names themselves.
ALIASES: dict[Resource, dict[str, str]] = {
    Resource.customers: {
        "customer_id": "id",
        "externalid": "external_id",
        "external_ref": "external_id",
        "crm_id": "external_id",
        "email_address": "email",
        "e_mail": "email",
        "mail": "email",
        "name": "full_name",
        "fullname": "full_name",
        "customer_name": "full_name",
        "contact_name": "full_name",
        "firstname": "first_name",
        "given_name": "first_name",
        "lastname": "last_name",
        "surname": "last_name",
        "family_name": "last_name",
        "phone_number": "phone",
        "telephone": "phone",
        "tel": "phone",
        "mobile": "phone",
        "company_name": "company",
        "organisation": "company",
        "organization": "company",
        "address_line1": "address.line1",
        "address1": "address.line1",
        "street": "address.line1",
        "address_line2": "address.line2",
        "address2": "address.line2",
        "city": "address.city",
        "town": "address.city",
        "region": "address.region",
        "state": "address.region",
        "province": "address.region",
        "postal_code": "address.postal_code",
        "postcode": "address.postal_code",
        "zip": "address.postal_code",
        "zip_code": "address.postal_code",
        "country": "address.country",
        "country_code": "address.country",
        "type": "customer_type",
        "labels": "tags",
    },
    Resource.feedback: {
        "customer": "customer_id",
        "type": "feedback_type",
        "category": "feedback_type",
        "title": "subject",
        "text": "content",
        "body": "content",
        "message": "content",
        "comment": "content",
        "score": "rating",
        "stars": "rating",
        "date": "received_at",
        "created": "received_at",
        "submitted_at": "received_at",
        "labels": "tags",
    },
}


def _normalise(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")


def _is_field(resource: Resource, field: str) -> bool:
    return field in FIELDS[resource] or (
        field.startswith("metadata.") and 0 < len(field) - 9 <= 100
    )


def automatic(resource: Resource, headers: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for header in headers:
        key = _normalise(header)
        field = key.replace("address_", "address.", 1) if key.startswith("address_") else key
        if header.lower().startswith("metadata."):
            field = "metadata." + header[9:].strip()
        elif not _is_field(resource, field):
            field = ALIASES[resource].get(key, "")
        if field and _is_field(resource, field) and field not in taken:
            mapping[header] = field
            taken.add(field)
    return mapping


def parse_json_object(raw: str | None, name: str) -> dict[str, Any]:
    if not raw:
        return {}
    if nul_escape_at(raw.encode()) is not None:  # as for every JSON body (kit/routing.py)
        raise InvalidInput(
            f"{name} holds the NUL character (U+0000), which Custos does not store",
            errors=[{"loc": ["body", name], "msg": NUL_REFUSED}],
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"{name} must be a JSON object",
            errors=[{"loc": ["body", name], "msg": "not a JSON object"}],
        )
    return value


def resolve(
    resource: Resource, headers: list[str], explicit: Mapping[str, Any] | None
) -> dict[str, str]:
    """Column -> field. An explicit mapping names columns of the file and known fields."""
    if not explicit:
        mapping = automatic(resource, headers)
    else:
        problems = []
        present = set(headers)
        for column, field in explicit.items():
            if not isinstance(field, str) or not _is_field(resource, field):
                problems.append({"loc": ["body", "mapping", column], "msg": "not a known field"})
            elif column not in present:
                problems.append({"loc": ["body", "mapping", column], "msg": "no such column"})
        if problems:
            known = ", ".join(FIELDS[resource])
            raise InvalidInput(
                f"The mapping is not valid; fields are {known}, metadata.<key>", errors=problems
            )
        mapping = {str(c): str(f) for c, f in explicit.items()}
        if len(set(mapping.values())) != len(mapping):
            raise InvalidInput("The mapping names a field twice")
    return mapping


def check_defaults(resource: Resource, defaults: Mapping[str, Any]) -> dict[str, Any]:
    problems = [
        {"loc": ["body", "defaults", name], "msg": "not a known field"}
        for name in defaults
        if not _is_field(resource, name) or name == "id"
    ]
    if problems:
        raise InvalidInput("The defaults name unknown fields", errors=problems)
    return dict(defaults)
