"""What to do with a piece of personal data once found: one small strategy class per
operator, in a registry by name. Each has its own options model.

- mask: keep a trace (`j***@example.com`, `******7890`, `***-**-6789`)
- redact: remove it
- replace: a type label (`<EMAIL>`)
- hash: keyed HMAC-SHA256, stable per tenant, not reversible
- pseudonymize: deterministic AES-SIV: the same value gives the same token within a tenant,
  and `reidentify` reverses it with that tenant's key only
- encrypt: AES-GCM with a random nonce: reversible, but the same value gives new tokens
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from pydantic import Field

from custos.kit.masking import mask_email, mask_text
from custos.kit.schemas import Schema
from custos.privacy.keys import TenantKeys
from custos.privacy.pii import Entity, PiiType

PSEUDONYM_PREFIX = "pse_"
ENCRYPTED_PREFIX = "enc_"
TOKEN_RE = re.compile(r"(?<![\w-])(pse|enc)_([A-Za-z0-9_-]{22,2048})(?![\w-])")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class NoOptions(Schema):
    pass


class MaskOptions(Schema):
    masking_char: str = Field("*", min_length=1, max_length=1)
    visible_digits: int = Field(4, ge=0, le=8, description="Digits left visible at the end")


class ReplaceOptions(Schema):
    template: str = Field(
        "<{TYPE}>", max_length=64, description="`{type}` or `{TYPE}` stand for the entity type"
    )


class HashOptions(Schema):
    length: int = Field(16, ge=8, le=64, description="Hex characters kept")


class Operator(ABC):
    name: ClassVar[str]
    options_model: ClassVar[type[Schema]] = NoOptions
    reversible: ClassVar[bool] = False

    @abstractmethod
    def apply(self, value: str, kind: PiiType, keys: TenantKeys, options: Any) -> str: ...


def _mask_digits(value: str, char: str, visible: int) -> str:
    digits = [ch for ch in value if ch.isdigit()]
    keep = "".join(digits[-visible:]) if visible else ""
    return char * (len(digits) - len(keep)) + keep


class Mask(Operator):
    name = "mask"
    options_model = MaskOptions

    def apply(self, value: str, kind: PiiType, keys: TenantKeys, options: MaskOptions) -> str:
        char = options.masking_char
        if kind is PiiType.email:
            return mask_email(value).replace("*", char)
        if kind in (PiiType.phone, PiiType.credit_card):
            return _mask_digits(value, char, options.visible_digits)
        if kind is PiiType.ssn:
            last = "".join(ch for ch in value if ch.isdigit())[-4:]
            return f"{char * 3}-{char * 2}-{last}"
        if kind is PiiType.iban:
            compact = value.replace(" ", "")
            return compact[:4] + char * (len(compact) - 8) + compact[-4:]
        if kind is PiiType.ip_address:
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                return mask_text(value)
            if address.version == 4:
                return ".".join([*value.split(".")[:2], char, char])
            return value.split(":")[0] + f":{char}"
        return mask_text(value).replace("*", char)


class Redact(Operator):
    name = "redact"

    def apply(self, value: str, kind: PiiType, keys: TenantKeys, options: NoOptions) -> str:
        return ""


class Replace(Operator):
    name = "replace"
    options_model = ReplaceOptions

    def apply(self, value: str, kind: PiiType, keys: TenantKeys, options: ReplaceOptions) -> str:
        return options.template.replace("{TYPE}", kind.value.upper()).replace("{type}", kind.value)


class Hash(Operator):
    name = "hash"
    options_model = HashOptions

    def apply(self, value: str, kind: PiiType, keys: TenantKeys, options: HashOptions) -> str:
        digest = hmac.new(keys.hash, f"{kind.value}:{value}".encode(), sha256).hexdigest()
        return digest[: options.length]


class Pseudonymize(Operator):
    name = "pseudonymize"
    reversible = True

    def apply(self, value: str, kind: PiiType, keys: TenantKeys, options: NoOptions) -> str:
        return pseudonymize(value, kind.value, keys)


class Encrypt(Operator):
    name = "encrypt"
    reversible = True

    def apply(self, value: str, kind: PiiType, keys: TenantKeys, options: NoOptions) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(keys.encryption).encrypt(
            nonce, f"{kind.value}\x00{value}".encode(), keys.tenant_id.encode()
        )
        return ENCRYPTED_PREFIX + _b64(nonce + sealed)


def pseudonymize(value: str, kind: str, keys: TenantKeys) -> str:
    sealed = AESSIV(keys.pseudonym).encrypt(f"{kind}\x00{value}".encode(), [b"custos-pseudonym"])
    return PSEUDONYM_PREFIX + _b64(sealed)


OPERATORS: dict[str, Operator] = {
    op.name: op for op in (Mask(), Redact(), Replace(), Hash(), Pseudonymize(), Encrypt())
}


def options_for(name: str, raw: Mapping[str, Any] | None) -> Any:
    return OPERATORS[name].options_model.model_validate(dict(raw or {}))


def transform(
    text: str,
    entities: list[Entity],
    keys: TenantKeys,
    operator: str,
    options: Any,
    per_type: Mapping[PiiType, tuple[str, Any]] | None = None,
) -> str:
    """The text with each entity replaced by its operator's output (entities must not overlap)."""
    parts: list[str] = []
    cursor = 0
    for entity in sorted(entities, key=lambda e: e.start):
        name, opts = (per_type or {}).get(entity.type, (operator, options))
        parts.append(text[cursor : entity.start])
        parts.append(OPERATORS[name].apply(entity.text(text), entity.type, keys, opts))
        cursor = entity.end
    parts.append(text[cursor:])
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Reidentified:
    text: str
    restored: int
    unresolved: int


def reidentify(text: str, keys: TenantKeys) -> Reidentified:
    """Tokens this tenant's keys made are turned back into their values; others stay."""
    restored = unresolved = 0

    def back(match: re.Match[str]) -> str:
        nonlocal restored, unresolved
        kind, payload = match.group(1), match.group(2)
        try:
            data = _unb64(payload)
            if kind == "pse":
                plain = AESSIV(keys.pseudonym).decrypt(data, [b"custos-pseudonym"])
            else:
                plain = AESGCM(keys.encryption).decrypt(
                    data[:12], data[12:], keys.tenant_id.encode()
                )
        except (InvalidTag, ValueError):
            unresolved += 1
            return match.group(0)
        restored += 1
        return plain.decode().split("\x00", 1)[1]

    return Reidentified(TOKEN_RE.sub(back, text), restored, unresolved)
