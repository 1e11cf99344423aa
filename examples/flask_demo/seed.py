"""The demo's seeded accounts: one per story, on the numbers of ``SandboxProvider.demo()``.

The passwords are public on purpose (the developer panel shows them): this is a
demo database, created on first run and reset from the panel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["SEED_ACCOUNTS", "SeedAccount"]

_UTC = dt.timezone.utc


@dataclass(frozen=True)
class SeedAccount:
    """One seeded account and the story it tells."""

    name: str
    phone: str  # E.164
    email: str
    password: str
    bound_at: dt.datetime  # when the account proved the number (here: when it was created)
    address: str
    orders: tuple[tuple[str, str, str], ...]  # (date, item, total): the owner's private data
    story: str


SEED_ACCOUNTS: tuple[SeedAccount, ...] = (
    SeedAccount(
        name="Alice Liu",
        phone="+8613800138000",
        email="alice@example.com",
        password="alice-demo-password",
        bound_at=dt.datetime(2022, 5, 10, 9, 30, tzinfo=_UTC),
        address="12 Lakeside Road, Xihu District, Hangzhou",
        orders=(
            ("2023-11-02", "Noise-cancelling headphones", "¥1,299.00"),
            ("2023-06-18", "Running shoes", "¥689.00"),
        ),
        story="Her old number, reissued to someone else in 2024: an SMS code is not enough.",
    ),
    SeedAccount(
        name="Bo Wang",
        phone="+8613900139000",
        email="bo@example.com",
        password="bo-demo-password",
        bound_at=dt.datetime(2022, 5, 10, 9, 30, tzinfo=_UTC),
        address="88 Century Avenue, Pudong, Shanghai",
        orders=(("2024-02-14", "Flowers, next-day delivery", "¥259.00"),),
        story="Never reissued: the SMS code logs straight in.",
    ),
    SeedAccount(
        name="Chen Jing",
        phone="+8613700137000",
        email="chen@example.com",
        password="chen-demo-password",
        bound_at=dt.datetime(2022, 5, 10, 9, 30, tzinfo=_UTC),
        address="5 Garden Lane, Tianhe, Guangzhou",
        orders=(("2024-08-30", "Espresso machine", "¥2,199.00"),),
        story="The provider has no data: one step-up, then SMS codes are enough again.",
    ),
    SeedAccount(
        name="Dana Zhou",
        phone="+8615800158000",
        email="dana@example.com",
        password="dana-demo-password",
        bound_at=dt.datetime(2023, 3, 1, 9, 30, tzinfo=_UTC),
        address="3 Riverside Walk, Wuhou, Chengdu",
        orders=(("2024-12-24", "Board game", "¥328.00"),),
        story="Tracked by the provider only since 2025, bound in 2023: one step-up.",
    ),
    SeedAccount(
        name="Eli Sun",
        phone="+8613600136000",
        email="eli@example.com",
        password="eli-demo-password",
        bound_at=dt.datetime(2021, 9, 15, 9, 30, tzinfo=_UTC),
        address="21 Harbour Street, Nanshan, Shenzhen",
        orders=(("2025-01-05", "Mechanical keyboard", "¥899.00"),),
        story="Reissued in 2019, before this account bound it: logs straight in.",
    ),
)
