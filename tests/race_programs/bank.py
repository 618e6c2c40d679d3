"""A lost update: read a balance, await a ledger call, write it back.

The second withdrawal starts at 0.015 s; the first one's ledger call takes 0.010 s.  Only when
that call outlasts the second's start do both read the same balance, and one withdrawal is lost.
"""

from __future__ import annotations

import asyncio


class Account:
    def __init__(self, balance: int) -> None:
        self.balance = balance
        self.lock = asyncio.Lock()


async def ledger_call() -> None:
    await asyncio.sleep(0.010)  # the simulated ledger service


async def withdraw(account: Account, amount: int) -> None:
    balance = account.balance
    await ledger_call()
    account.balance = balance - amount


async def withdraw_locked(account: Account, amount: int) -> None:
    async with account.lock:
        balance = account.balance
        await ledger_call()
        account.balance = balance - amount


async def _two(step: object) -> None:
    account = Account(100)
    first = asyncio.create_task(step(account, 30))  # type: ignore[operator]
    await asyncio.sleep(0.015)
    second = asyncio.create_task(step(account, 20))  # type: ignore[operator]
    await asyncio.gather(first, second)
    assert account.balance == 50, f"lost update: balance is {account.balance}, expected 50"


async def race() -> None:
    await _two(withdraw)


async def fixed() -> None:
    await _two(withdraw_locked)
