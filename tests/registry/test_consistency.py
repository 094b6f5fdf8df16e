"""Consistent-read revision requests are shared, never stale."""

from __future__ import annotations

import asyncio

from kplane.registry.consistency import RevisionReader


class _SlowBackend:
    """Counts revision requests; each answers the revision current when it *started*."""

    def __init__(self) -> None:
        self.revision = 1
        self.calls = 0
        self.release = asyncio.Event()

    async def current_revision(self) -> int:
        self.calls += 1
        seen = self.revision
        await self.release.wait()
        return seen


async def test_concurrent_readers_share_requests_and_see_later_writes() -> None:
    backend = _SlowBackend()
    reader = RevisionReader(backend)  # type: ignore[arg-type]
    first = asyncio.ensure_future(reader.current_revision())
    while backend.calls == 0:
        await asyncio.sleep(0)
    # A write lands after the first request started; later readers must see it.
    backend.revision = 2
    later = [asyncio.ensure_future(reader.current_revision()) for _ in range(50)]
    await asyncio.sleep(0)
    backend.release.set()
    assert await first == 1
    assert await asyncio.gather(*later) == [2] * 50
    assert backend.calls == 2


async def test_errors_reach_every_waiter() -> None:
    class Broken:
        async def current_revision(self) -> int:
            await asyncio.sleep(0)
            raise RuntimeError("etcd is down")

    reader = RevisionReader(Broken())  # type: ignore[arg-type]
    results = await asyncio.gather(*(reader.current_revision() for _ in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    # And the reader recovers once the backend does.
    assert reader.idle


async def test_readers_join_a_request_until_it_is_sent() -> None:
    backend = _SlowBackend()
    reader = RevisionReader(backend)  # type: ignore[arg-type]
    # Readers arriving in the same loop iteration, before the request goes out, share it.
    together = [asyncio.ensure_future(reader.current_revision()) for _ in range(20)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert backend.calls == 1
    backend.release.set()
    assert await asyncio.gather(*together) == [1] * 20
    assert backend.calls == 1
    assert reader.idle


async def test_a_cancelled_reader_leaves_the_others_waiting() -> None:
    backend = _SlowBackend()
    reader = RevisionReader(backend)  # type: ignore[arg-type]
    quitter = asyncio.ensure_future(reader.current_revision())
    stayer = asyncio.ensure_future(reader.current_revision())
    while backend.calls == 0:
        await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.sleep(0)
    assert quitter.cancelled()
    backend.release.set()
    assert await stayer == 1
    assert reader.idle
