"""Methods, staticmethods, classmethods, nested, decorated and abstract async defs."""

import abc
import asyncio
import functools
import inspect


def logged(fn):
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        print("calling", fn.__qualname__)
        result = await fn(*args, **kwargs)
        print("returned", result)
        return result

    return wrapper


def retry(times):
    def decorate(fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            for attempt in range(times):
                try:
                    return await fn(*args, **kwargs)
                except ValueError as exc:
                    print("attempt", attempt, "failed:", exc)
            raise RuntimeError("gave up")

        return wrapper

    return decorate


class Base(abc.ABC):
    @abc.abstractmethod
    async def fetch(self, key):
        """Fetch a value."""

    async def twice(self, key):
        return [await self.fetch(key), await self.fetch(key)]


class Store(Base):
    prefix = "v"

    def __init__(self):
        self.calls = 0

    async def fetch(self, key):
        self.calls += 1
        await asyncio.sleep(0)
        return f"{self.prefix}:{key}:{self.calls}"

    @staticmethod
    async def static(x):
        await asyncio.sleep(0)
        return x + 1

    @classmethod
    async def build(cls):
        await asyncio.sleep(0)
        return cls()

    @logged
    async def decorated(self, x):
        await asyncio.sleep(0)
        return x * 3

    @retry(3)
    async def flaky(self):
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls < 5:
            raise ValueError(f"calls={self.calls}")
        return "finally ok"

    async def __call__(self, x):
        await asyncio.sleep(0)
        return f"called with {x}"


async def outer(n):
    async def inner(m):
        async def innermost():
            await asyncio.sleep(0)
            return m * 100

        return await innermost() + m

    print("nested qualname:", inner.__qualname__)
    return await inner(n)


async def main():
    try:
        Base()
    except TypeError as exc:
        print("abstract:", exc)
    print("abstract methods:", sorted(Base.__abstractmethods__))
    print("fetch is abstract:", getattr(Base.fetch, "__isabstractmethod__", False))
    store = await Store.build()
    print(type(store).__name__, await store.twice("k"))
    print(await Store.static(1), await store.static(2))
    print(await store.decorated(4))
    print(await store.flaky())
    print(await store("arg"))
    print(await outer(7))
    checks = {
        "Base.fetch": Base.fetch,
        "Store.fetch": Store.fetch,
        "store.fetch": store.fetch,
        "Store.static": Store.static,
        "Store.build": Store.build,
        "store.decorated": store.decorated,
        "outer": outer,
    }
    for name, fn in checks.items():
        print(name, inspect.iscoroutinefunction(fn), fn.__qualname__, inspect.signature(fn))
    print("decorated __wrapped__ qualname:", Store.decorated.__wrapped__.__qualname__)
    print("static descriptor:", type(Store.__dict__["static"]).__name__)
    print("classmethod descriptor:", type(Store.__dict__["build"]).__name__)


asyncio.run(main())
