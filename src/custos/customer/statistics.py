"""Order and complaint statistics, fed by the services that know about orders."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.customer import service as customer_service
from custos.customer.schemas import StatisticsIncrement
from custos.exceptions import Conflict, InvalidInput
from custos.kit.time import as_utc
from custos.models import Customer, CustomerStatIncrement


async def apply_increment(
    session: AsyncSession, actor: Principal, customer_id: str, body: StatisticsIncrement
) -> tuple[Customer, bool]:
    """Returns the customer and whether this increment was new."""
    customer = await customer_service.get(session, actor, customer_id)
    seen = await session.execute(
        sa.select(CustomerStatIncrement.customer_id).where(
            CustomerStatIncrement.tenant_id == actor.tenant_id,
            CustomerStatIncrement.increment_id == body.increment_id,
        )
    )
    previous = seen.scalar_one_or_none()
    if previous is not None:
        if previous != customer_id:
            raise Conflict("This increment_id was already applied to another customer")
        return customer, False
    if body.order_value and not (body.currency or customer.currency):
        raise InvalidInput(
            "An order value needs a currency",
            errors=[{"loc": ["body", "currency"], "msg": "required with order_value"}],
        )
    if body.currency and customer.currency and body.currency != customer.currency:
        raise Conflict(f"This customer's orders are in {customer.currency}, not {body.currency}")
    session.add(
        CustomerStatIncrement(
            tenant_id=actor.tenant_id, increment_id=body.increment_id, customer_id=customer_id
        )
    )
    customer.order_count += body.orders
    customer.total_order_value += body.order_value
    customer.complaint_count += body.complaints
    if body.currency:
        customer.currency = body.currency
    if body.last_order_at is not None and (
        customer.last_order_at is None or as_utc(body.last_order_at) > customer.last_order_at
    ):
        customer.last_order_at = as_utc(body.last_order_at)
    customer.version += 1
    try:
        await session.flush()
    except sa.exc.IntegrityError:
        # A concurrent retry of the same increment won the race: it counts once.
        raise Conflict("This increment is being applied by another request; retry") from None
    audit.record(
        session,
        actor,
        "customer.statistics_incremented",
        "customer",
        customer.id,
        changes={
            "increment_id": {"from": None, "to": body.increment_id},
            "orders": {"from": None, "to": body.orders},
            "complaints": {"from": None, "to": body.complaints},
        },
    )
    changed = ["order_count", "total_order_value", "complaint_count", "currency", "last_order_at"]
    customer_service.emit(session, actor, events.CUSTOMER_UPDATED, customer, changed_fields=changed)
    return customer, True


async def add_complaints(
    session: AsyncSession, actor: Principal, counts: Mapping[str, int]
) -> None:
    """Complaints counted from the tenant's own feedback, in the caller's transaction: one
    UPDATE per distinct count, a `customer.updated` event per customer. The caller's audit
    row (the feedback written) accounts for the change."""
    by_count: dict[int, list[str]] = {}
    for customer_id, count in counts.items():
        if count > 0:
            by_count.setdefault(count, []).append(customer_id)
    for count, ids in by_count.items():
        rows = await session.scalars(
            sa.update(Customer)
            .where(Customer.tenant_id == actor.tenant_id, Customer.id.in_(ids))
            .values(complaint_count=Customer.complaint_count + count, version=Customer.version + 1)
            .returning(Customer),
            execution_options={"populate_existing": True, "synchronize_session": False},
        )
        for customer in rows:
            customer_service.emit(
                session,
                actor,
                events.CUSTOMER_UPDATED,
                customer,
                changed_fields=["complaint_count"],
            )
