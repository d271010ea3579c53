"""The second wall: on PostgreSQL, row-level security confines every query to the tenant of
its transaction, even a query that forgot its tenant filter, and never leaks across pooled
connections. (SQLite has no RLS; the scoped repositories and the cross-tenant suite cover
it there.)"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from custos.config import Settings
from custos.db import Database, create_engine
from custos.kit.ids import new_id
from custos.models import Base, TenantOwned, User
from custos.runtime import Runtime
from tests.factories import Factory


@pytest.fixture(autouse=True)
def _postgres_only(uses_postgres: bool) -> None:
    if not uses_postgres:
        pytest.skip("row-level security is a PostgreSQL feature")


def _tenant_tables() -> dict[str, str]:
    tables = {"tenants": "id"}
    for mapper in Base.registry.mappers:
        if issubclass(mapper.class_, TenantOwned):
            tables[mapper.class_.__tablename__] = "tenant_id"
    return tables


class TestRowLevelSecurity:
    async def test_every_tenant_table_forces_row_level_security(self, runtime: Runtime) -> None:
        async with runtime.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity"
                        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = 'public' AND c.relkind = 'r'"
                    )
                )
            ).all()
            with_tenant_column = set(
                (
                    await conn.execute(
                        sa.text(
                            "SELECT table_name FROM information_schema.columns"
                            " WHERE table_schema = 'public' AND column_name = 'tenant_id'"
                        )
                    )
                ).scalars()
            )
        state = {name: (rls, force) for name, rls, force in rows}
        expected = set(_tenant_tables()) | with_tenant_column
        assert expected <= state.keys()
        assert {t for t in expected if state[t] != (True, True)} == set()

    async def test_requests_run_as_a_role_that_is_subject_to_it(self, runtime: Runtime) -> None:
        async with runtime.db.engine.connect() as conn:
            current = (await conn.execute(sa.text("SELECT current_user"))).scalar_one()
            attrs = (
                await conn.execute(
                    sa.text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"),
                    {"r": current},
                )
            ).one()
        assert current == runtime.settings.db_runtime_role
        assert tuple(attrs) == (False, False)

    async def test_a_query_without_tenant_filter_sees_only_its_tenant(
        self, runtime: Runtime, factory: Factory
    ) -> None:
        first, second = await factory.tenant(), await factory.tenant()
        async with runtime.db.transaction(tenant_id=first.id, write=False) as session:
            # Deliberately unscoped: the bug RLS exists to contain.
            tenant_ids = set((await session.execute(sa.select(User.tenant_id))).scalars())
            tenants = set((await session.execute(sa.text("SELECT id FROM tenants"))).scalars())
        assert tenant_ids == {first.id}
        assert tenants == {first.id}
        assert second.id not in tenant_ids

    async def test_no_tenant_set_means_no_rows(self, runtime: Runtime, factory: Factory) -> None:
        await factory.tenant()
        async with runtime.db.engine.connect() as conn:
            count = (await conn.execute(sa.text("SELECT count(*) FROM users"))).scalar_one()
        assert count == 0

    async def test_writing_into_another_tenant_is_refused(
        self, runtime: Runtime, factory: Factory
    ) -> None:
        first, second = await factory.tenant(), await factory.tenant()

        async def insert_into_second() -> None:
            async with runtime.db.transaction(tenant_id=first.id) as session:
                session.add(
                    User(
                        id=new_id("usr"),
                        tenant_id=second.id,
                        email="intruder@example.com",
                        password_hash="x",
                        role="admin",
                    )
                )
                await session.flush()

        async def move_rows_to_second() -> None:
            async with runtime.db.transaction(tenant_id=first.id) as session:
                await session.execute(
                    sa.update(User).where(User.tenant_id == first.id).values(tenant_id=second.id)
                )

        with pytest.raises(DBAPIError, match="row-level security"):
            await insert_into_second()
        with pytest.raises(DBAPIError, match="row-level security"):
            await move_rows_to_second()

    async def test_a_pooled_connection_does_not_keep_the_previous_tenant(
        self, settings: Settings, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        one_connection = replace_settings(settings, db_pool_size=1, db_max_overflow=0)
        db = Database(one_connection, create_engine(one_connection))
        try:
            async with db.transaction(tenant_id=tenant.id, write=False) as session:
                seen = (await session.execute(sa.text("SELECT count(*) FROM users"))).scalar_one()
                assert seen == 1
            # The same physical connection, next borrower, no tenant set.
            async with db.engine.connect() as conn:
                leftover = (
                    await conn.execute(sa.text("SELECT current_setting('app.tenant_id', true)"))
                ).scalar_one()
                count = (await conn.execute(sa.text("SELECT count(*) FROM users"))).scalar_one()
            assert leftover in (None, "")
            assert count == 0
            assert db.engine.pool.checkedin() == 1
        finally:
            await db.dispose()


def replace_settings(settings: Settings, **changes: Any) -> Settings:
    return Settings(**{**settings.model_dump(), **changes})
