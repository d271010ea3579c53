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

# The features' own holders register on import; they use the names above.
from custos.bulk import holders as _bulk  # noqa: F401
from custos.cache import holders as _cache  # noqa: F401
from custos.feedback import holders as _feedback  # noqa: F401
from custos.webhook import holders as _webhook  # noqa: F401
