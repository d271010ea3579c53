"""The `custos` command."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from custos.config import Settings, get_settings

app = typer.Typer(
    help="Custos: multi-tenant customer data platform API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object")]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _run(job: Callable[[Any], Awaitable[T]]) -> T:
    """Run `job(runtime)` against the configured database, then shut down cleanly."""
    from custos.exceptions import CustosError
    from custos.runtime import Runtime

    async def main() -> T:
        runtime = Runtime.build(get_settings())
        try:
            return await job(runtime)
        finally:
            await runtime.stop()

    try:
        return asyncio.run(main())
    except CustosError as exc:
        _fail(exc.detail)
        raise  # unreachable: _fail exits


def _emit(data: dict[str, Any], as_json: bool, human: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        for line in human:
            typer.echo(line)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
) -> None:
    """Serve the API."""
    import uvicorn

    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Metrics from every worker are merged through this directory.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="custos-metrics-")
    if workers > 1 and not get_settings().redis_url:
        # Each worker's memory would miss the others' writes: no read cache without Redis.
        os.environ["CUSTOS_CACHE_ENABLED"] = "false"
        typer.echo(
            "warning: several workers without REDIS_URL: the read cache is off, and rate"
            " limits and credential revocations are counted and heard per worker",
            err=True,
        )
    uvicorn.run(
        "custos.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        # In-flight requests get this long to finish on SIGTERM; then the process exits.
        timeout_graceful_shutdown=30,
        # A worker that does not answer the supervisor's ping in this long is killed and
        # replaced. The 5 s default killed workers still starting on a saturated host.
        timeout_worker_healthcheck=30,
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=200, help="Jobs run at once (default: worker_concurrency, 16)"),
    ] = None,
    queue: Annotated[
        list[str] | None, typer.Option(help="Only these queues (repeatable); all when absent")
    ] = None,
    processes: Annotated[
        int,
        typer.Option(min=1, max=64, help="Worker processes, restarted at once if one dies"),
    ] = 1,
) -> None:
    """Run background jobs. Start any number, on any machine sharing the database."""
    from custos.worker.app import run_worker
    from custos.worker.supervisor import WorkerLink, supervise

    settings = get_settings()
    if not settings.is_postgres:
        _fail(
            "on the embedded default (SQLite) jobs run inside `custos serve`; "
            "separate workers need PostgreSQL (set DATABASE_URL)"
        )

    def one_process(link: WorkerLink) -> None:
        async def job(runtime: Any) -> None:
            await run_worker(
                runtime,
                concurrency=concurrency or settings.worker_concurrency,
                queues=queue,
                link=link,
            )

        _run(job)

    supervise(processes, one_process)


@app.command()
def migrate() -> None:
    """Apply database migrations (and, on PostgreSQL, set up the runtime role)."""
    from custos.migrate import upgrade

    settings = get_settings()
    upgrade(settings)
    typer.echo(f"database is at the latest revision ({_describe(settings)})")


@app.command("seal-audit")
def seal_audit() -> None:
    """Link every audit row not yet in its tenant's hash chain (the server does this itself)."""
    from custos.audit.sealing import seal_all

    async def job(runtime: Any) -> int:
        return await seal_all(runtime.db)

    typer.echo(f"sealed {_run(job)} audit rows")


@app.command("create-tenant")
def create_tenant(
    slug: Annotated[str, typer.Option(help="Unique short name, e.g. acme")],
    name: Annotated[str, typer.Option(help="Display name")],
    plan: Annotated[str, typer.Option(help="starter, pro or enterprise")] = "starter",
    admin_email: Annotated[str | None, typer.Option(help="Create a first admin user")] = None,
    admin_password: Annotated[str | None, typer.Option(help="Their password")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a tenant, optionally with its first admin user."""
    from pydantic import ValidationError

    from custos.tenant import service
    from custos.tenant.schemas import TenantCreate

    try:
        body = TenantCreate(
            slug=slug,
            name=name,
            plan=plan,
            admin_email=admin_email,
            admin_password=admin_password,
        )
    except ValidationError as exc:
        _fail(_validation_message(exc))
        return

    async def job(runtime: Any) -> dict[str, Any]:
        async with runtime.db.transaction(system=True) as session:
            tenant = await service.create(runtime, session, None, body)
        return {"id": tenant.id, "slug": tenant.slug, "name": tenant.name, "plan": tenant.plan}

    data = _run(job)
    _emit(data, as_json, [f"created tenant {data['slug']} ({data['id']})"])


@app.command("create-user")
def create_user(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    email: Annotated[str, typer.Option()],
    password: Annotated[str | None, typer.Option(help="Generated and printed when absent")] = None,
    role: Annotated[
        str, typer.Option(help="admin, developer, viewer, customer, service")
    ] = "admin",
    full_name: Annotated[str | None, typer.Option()] = None,
    platform_admin: Annotated[
        bool, typer.Option("--platform-admin", help="Also an operator of the whole platform")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a user in a tenant."""
    from pydantic import ValidationError

    from custos.user import service
    from custos.user.schemas import UserCreate

    chosen = password or secrets.token_urlsafe(18)
    try:
        body = UserCreate(email=email, password=chosen, role=role, full_name=full_name)
    except ValidationError as exc:
        _fail(_validation_message(exc))
        return

    async def job(runtime: Any) -> dict[str, Any]:
        async with runtime.db.transaction(system=True) as session:
            tenant_row = await _tenant_by_slug(session, tenant)
            user = await service.create(
                runtime, session, None, tenant_row.id, body, platform_admin=platform_admin
            )
        return {
            "id": user.id,
            "tenant": tenant,
            "email": user.email,
            "role": user.role,
            "platform_admin": platform_admin,
            "password": chosen,
        }

    data = _run(job)
    _emit(
        data,
        as_json,
        [f"created user {data['email']} ({data['id']}) in {tenant}", f"password: {chosen}"],
    )


@app.command("create-api-key")
def create_api_key(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    name: Annotated[str, typer.Option(help="What the key is for")],
    scopes: Annotated[str, typer.Option(help="Comma-separated, e.g. customers:read,audit:read")],
    expires_in_days: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key; the secret is printed this once."""
    from datetime import timedelta

    from pydantic import ValidationError

    from custos.api_key import service
    from custos.api_key.schemas import ApiKeyCreate
    from custos.kit.time import utcnow

    try:
        body = ApiKeyCreate(
            name=name,
            scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
        )
    except ValidationError as exc:
        _fail(_validation_message(exc))
        return

    async def job(runtime: Any) -> dict[str, Any]:
        async with runtime.db.transaction(system=True) as session:
            tenant_row = await _tenant_by_slug(session, tenant)
            issued = await service.create(runtime, session, None, tenant_row.id, body)
        return {
            "id": issued.record.id,
            "tenant": tenant,
            "name": issued.record.name,
            "scopes": issued.record.scopes,
            "expires_at": issued.record.expires_at,
            "key": issued.secret,
        }

    data = _run(job)
    _emit(data, as_json, [f"created API key {data['id']} in {tenant}", f"key: {data['key']}"])


@app.command()
def demo() -> None:
    """Create the demo tenant with an admin and an API key, once; print the credentials."""
    from custos.api_key import service as key_service
    from custos.api_key.schemas import ApiKeyCreate
    from custos.auth.scopes import ROLE_SCOPES, Role
    from custos.tenant import service as tenant_service
    from custos.tenant.repository import TenantRepository
    from custos.tenant.schemas import TenantCreate

    password = secrets.token_urlsafe(12)

    async def job(runtime: Any) -> dict[str, Any] | None:
        async with runtime.db.transaction(system=True) as session:
            if await TenantRepository(session).by_slug("demo"):
                return None
            tenant = await tenant_service.create(
                runtime,
                session,
                None,
                TenantCreate(
                    slug="demo",
                    name="Demo Company",
                    plan="pro",
                    admin_email="admin@demo.example",
                    admin_password=password,
                ),
            )
            issued = await key_service.create(
                runtime,
                session,
                None,
                tenant.id,
                ApiKeyCreate(name="demo", scopes=sorted(ROLE_SCOPES[Role.admin])),
            )
        return {"key": issued.secret}

    data = _run(job)
    if data is None:
        typer.echo(
            "demo tenant exists; its credentials were printed when it was created "
            "(make a new admin with `custos create-user --tenant demo --email ...`)"
        )
        return
    bar = "-" * 72
    typer.echo(
        f"{bar}\nDemo tenant created. These are shown once:\n"
        f"  tenant:   demo\n  email:    admin@demo.example\n  password: {password}\n"
        f"  API key:  {data['key']}\n{bar}"
    )


@app.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="File to write; stdout when absent")] = None,
) -> None:
    """Write the OpenAPI schema."""
    from custos.app import create_app

    schema = json.dumps(create_app().openapi(), indent=2)
    if output is None:
        typer.echo(schema)
    else:
        output.write_text(schema + "\n")
        typer.echo(f"wrote {output}")


async def _tenant_by_slug(session: Any, slug: str) -> Any:
    from custos.exceptions import NotFound
    from custos.tenant.repository import TenantRepository

    tenant = await TenantRepository(session).by_slug(slug)
    if tenant is None:
        raise NotFound(f"no tenant with slug {slug!r}")
    return tenant


def _validation_message(exc: Any) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
    )


def _describe(settings: Settings) -> str:
    return "PostgreSQL" if settings.is_postgres else "SQLite"


def main() -> None:
    try:
        app()
    except ValueError as exc:  # e.g. settings refused: say why, no traceback
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
