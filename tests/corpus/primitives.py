"""asyncio.Lock, Queue, Event, Semaphore and Condition between a few tasks."""

import asyncio


async def producer(queue, n):
    for i in range(n):
        await asyncio.sleep(0.002)
        await queue.put(i)
    await queue.put(None)


async def consumer(queue, out):
    while (item := await queue.get()) is not None:
        out.append(item)
        queue.task_done()
    queue.task_done()


async def locked(lock, name, log):
    async with lock:
        log.append(f"{name} in")
        await asyncio.sleep(0.002)
        log.append(f"{name} out")


async def limited(sem, name, log):
    async with sem:
        log.append(name)
        await asyncio.sleep(0.002)


async def waiter(event, name):
    await event.wait()
    return f"{name} woke"


async def cond_waiter(cond, box):
    async with cond:
        await cond.wait_for(lambda: box)
        return box[0]


async def main():
    queue = asyncio.Queue()
    out = []
    await asyncio.gather(producer(queue, 3), consumer(queue, out))
    await queue.join()
    print("queue:", out)

    lock = asyncio.Lock()
    log = []
    await asyncio.gather(*(locked(lock, n, log) for n in "abc"))
    print("lock:", log, "locked now:", lock.locked())
    await lock.acquire()
    lock.release()

    sem = asyncio.Semaphore(2)
    log = []
    await asyncio.gather(*(limited(sem, n, log) for n in "wxyz"))
    print("semaphore:", log)

    event = asyncio.Event()
    tasks = [asyncio.create_task(waiter(event, n)) for n in ("e1", "e2")]
    await asyncio.sleep(0.002)
    event.set()
    print("event:", await asyncio.gather(*tasks))

    cond = asyncio.Condition()
    box = []
    task = asyncio.create_task(cond_waiter(cond, box))
    await asyncio.sleep(0.002)
    async with cond:
        box.append("condition value")
        cond.notify_all()
    print("condition:", await task)


asyncio.run(main())
