"""Personal-data holders: the registry, and the built-in holders registered on import."""

from custos.privacy.holders import builtin as _builtin  # noqa: F401 (registers the holders)
from custos.privacy.holders.base import (
    ERASED,
    Context,
    Erased,
    Holder,
    Mode,
    Subject,
    register,
    registered,
)

__all__ = ["ERASED", "Context", "Erased", "Holder", "Mode", "Subject", "register", "registered"]
