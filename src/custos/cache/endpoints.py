from __future__ import annotations

from fastapi import Path, Response

from custos.auth.dependencies import CacheAdmin, RuntimeDep, TenantSession
from custos.cache import service
from custos.cache.schemas import CacheStats
from custos.kit.routing import CustosRouter

router = CustosRouter(prefix="/cache", tags=["cache"])


@router.get("/stats", response_model=CacheStats, summary="The tenant's read cache: hits, misses")
async def cache_stats(auth: CacheAdmin, runtime: RuntimeDep) -> CacheStats:
    return await service.tenant_stats(runtime.read_cache, auth.tenant_id)


@router.delete("", status_code=204, summary="Clear the tenant's read cache")
async def clear_cache(auth: CacheAdmin, session: TenantSession, runtime: RuntimeDep) -> Response:
    await service.clear(runtime.read_cache, session, auth, None)
    return Response(status_code=204)


@router.delete(
    "/{key}",
    status_code=204,
    summary="Clear one entry: `customer:<id>` (a record) or `customers` (the list pages)",
)
async def clear_cache_key(
    auth: CacheAdmin,
    session: TenantSession,
    runtime: RuntimeDep,
    key: str = Path(max_length=80),
) -> Response:
    await service.clear(runtime.read_cache, session, auth, key)
    return Response(status_code=204)
