"""Feeds on a simulated 5-node cluster (real node code, virtual time, seeded faults)."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from ringkv.errors import RingKVError
from ringkv.feeds.messages import FeedReplicaScan
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual

SEEDS = [int(s) for s in os.environ.get("RINGKV_SIM_SEEDS", "1,2,3").split(",")]


async def _all_ids(feed, reverse=False, r=None):
    return [e.id async for e in feed.aiterate(reverse=reverse, r=r)]


async def _fill(feed, n: int, tag: bytes = b"") -> None:
    """``n`` appends, 250 at a time."""
    for start in range(0, n, 250):
        await asyncio.gather(*(feed.aappend(b"%s%d" % (tag, i)) for i in range(start, min(n, start + 250))))


async def _settled(root: str, seed: int):
    """A 3-node cluster whose members all know each other, and a client with a 4 s timeout."""
    cluster = await SimCluster(root, 3, seed=seed).start()
    await cluster.run_for(5)
    return cluster, await cluster.client(0, timeout=4.0)


def _second_replica_hangs(cluster, feed: bytes):
    """``(first replica's server, hang)``: ``hang()`` cuts the feed's second replica off, still "alive" to the others for a while."""
    first, second = cluster.servers[0].ring.preference_list(feed, 3)[:2]
    hung = next(i for i, s in enumerate(cluster.servers) if s.node_id == second)
    server = next(s for s in cluster.servers if s.node_id == first)
    return server, lambda: cluster.partition([hung], [i for i in range(len(cluster.servers)) if i != hung])


def test_concurrent_appends_from_three_nodes_form_one_order(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 5, seed=7).start()
        try:
            clients = [await cluster.client(i) for i in range(3)]

            async def writer(ci, client):
                feed = client.feed("events")
                return [await feed.aappend(b"%d-%d" % (ci, i)) for i in range(1000)]

            acked = await asyncio.gather(*(writer(ci, c) for ci, c in enumerate(clients)))
            orders = [await _all_ids(c.feed("events")) for c in clients]
            reverse = [await _all_ids(c.feed("events"), reverse=True) for c in clients]
            lengths = [await c.feed("events").alength() for c in clients]
            return acked, orders, reverse, lengths
        finally:
            await cluster.stop()

    acked, orders, reverse, lengths = run_virtual(main())
    all_acked = {eid for ids in acked for eid in ids}
    assert len(all_acked) == 3000
    for order, rev in zip(orders, reverse):
        assert len(order) == 3000 and set(order) == all_acked
        assert order == orders[0] == sorted(order)
        assert rev == order[::-1]
    assert lengths == [3000, 3000, 3000]


async def _scenario(root: str, seed: int):
    rng = random.Random(seed)
    cluster = await SimCluster(root, 5, seed=seed, drop=0.02).start()
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + 15
    acked: set = set()
    removed: set = set()
    maybe_removed: set = set()
    try:
        clients = [await cluster.client(i) for i in range(3)]

        async def writer(ci, client):
            feed = client.feed("f")
            mine = []
            while loop.time() < stop_at:
                try:
                    if mine and rng.random() < 0.2:
                        eid = mine.pop(rng.randrange(len(mine)))
                        maybe_removed.add(eid)  # a failed remove may still have landed
                        await feed.aremove(eid)
                        removed.add(eid)
                    else:
                        eid = await feed.aappend(b"c%d" % ci)
                        acked.add(eid)
                        mine.append(eid)
                except RingKVError:
                    await asyncio.sleep(0.05)

        async def nemesis():
            while loop.time() < stop_at:
                await asyncio.sleep(rng.uniform(1, 3))
                nodes = list(range(5))
                rng.shuffle(nodes)
                cluster.partition(nodes[:2], nodes[2:]) if rng.random() < 0.5 else cluster.heal()

        await asyncio.gather(*(writer(ci, c) for ci, c in enumerate(clients)), nemesis())
        cluster.heal()
        await cluster.run_for(5)
        repairer = await cluster.client(0, timeout=10.0)
        reader = repairer.feed("f")
        for _ in range(5):  # a full read at R=N repairs every replica (once every node answers again)
            try:
                await _all_ids(reader, r=3)
                break
            except RingKVError:
                await cluster.run_for(2)
        await cluster.run_for(3)
        views = []
        ring = cluster.servers[0].ring
        for node_id in ring.preference_list(b"f", 3):
            addr = cluster.servers[0].addr(node_id)
            page = await repairer.call(FeedReplicaScan("default", b"f", None, False, 1000), addr=addr)
            views.append([(k, raw) for k, raw in page.entries])
        return acked, removed, maybe_removed, await _all_ids(reader), views
    finally:
        await cluster.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_appends_and_removes_under_partitions_converge_to_one_order(tmp_path, seed):
    acked, removed, maybe_removed, final, views = run_virtual(_scenario(str(tmp_path), seed))
    assert len(acked) > 30, "the scenario should acknowledge enough appends to mean something"
    assert final == sorted(final)
    assert acked - maybe_removed <= set(final), f"seed={seed}: acknowledged entries missing"
    assert not (set(final) & removed), f"seed={seed}: removed entries came back"
    assert all(v == views[0] for v in views), f"seed={seed}: replicas disagree"


def _feed_source(cluster, feed: bytes):
    """The server that serves ``feed``'s pages (its first replica) and its column family's name."""
    first = cluster.servers[0].ring.preference_list(feed, 3)[0]
    return next(s for s in cluster.servers if s.node_id == first), "fd.default"


def _stats(cluster, name: str) -> int:
    return sum(s.coordinator.stats[name] for s in cluster.servers)


def test_agreeing_replicas_are_read_by_tree_and_a_stale_one_is_merged_and_repaired(tmp_path):
    """A page is served from one replica's bytes when the others' hash trees
    agree on the feed's segment (no second scan); a replica missing entries
    forces a full merge that returns them and repairs it."""
    from ringkv.feeds.ids import parse_id
    from ringkv.quorum.tables import feed_prefix

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=11).start()
        try:
            client = await cluster.client(0)
            feed = client.feed("digest")
            for i in range(600):
                await feed.aappend(b"e%d" % i)
            server, cf = _feed_source(cluster, b"digest")
            scans = []
            for s in cluster.servers:
                if s is not server:
                    s.feeds._scan_rows = (lambda f: lambda msg: scans.append(1) or f(msg))(s.feeds._scan_rows)
            ids = await _all_ids(feed)
            clean = (_stats(cluster, "feed_scan_merges"), _stats(cluster, "feed_tree_agreed"), len(scans))
            # the feed's first replica loses 40 entries the way a purge or a range drop
            # loses records: through its hash tree, which then differs from the others'
            lost = ids[100:140]
            for eid in lost:
                skey = feed_prefix(b"digest") + parse_id(eid)
                server.repair.trees.delete_record(cf, skey, server.storage.get(cf, skey))
            again = await _all_ids(feed)
            after_merge = _stats(cluster, "feed_scan_merges")
            agreed = _stats(cluster, "feed_tree_agreed")
            third = await _all_ids(feed)
            local = list(server.storage.scan(cf, feed_prefix(b"digest"), feed_prefix(b"digest") + b"\xff" * 17))
            return ids, clean, again, after_merge, agreed, third, _stats(cluster, "feed_scan_merges"), _stats(cluster, "feed_tree_agreed"), len(local)
        finally:
            await cluster.stop()

    ids, clean, again, after_merge, agreed, third, final_merges, final_agreed, local = run_virtual(main())
    assert len(ids) == 600 and ids == sorted(ids)
    merges, tree_agreed, replica_scans = clean
    assert merges == 0, "agreeing replicas should need no merge"
    assert tree_agreed > 0 and replica_scans == 0, "equal trees spare the second replica its scan"
    assert again == ids, "entries one replica lost must come from the other"
    assert after_merge > 0
    assert local == 600, "the stale replica is read-repaired"
    assert third == ids and final_merges == after_merge, "once repaired, pages agree again"
    assert final_agreed > agreed, "once repaired, the trees agree again"


def test_records_lost_behind_the_trees_back_are_found_once_the_trees_are_rebuilt(tmp_path):
    """Entries deleted straight from a replica's RocksDB (a damaged or partly
    restored directory) leave its tree unchanged; the periodic tree rebuild
    makes the trees differ, and the next read merges and repairs them."""
    from ringkv.feeds.ids import parse_id
    from ringkv.quorum.tables import feed_prefix
    from ringkv.repair import RepairConfig

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=12, repair=RepairConfig(interval=0, tree_rebuild=30.0)).start()
        try:
            client = await cluster.client(0)
            feed = client.feed("rot")
            for i in range(300):
                await feed.aappend(b"e%d" % i)
            ids = await _all_ids(feed)
            server, cf = _feed_source(cluster, b"rot")
            for eid in ids[50:80]:
                server.storage.cf(cf).delete(feed_prefix(b"rot") + parse_id(eid))
            await cluster.run_for(60)  # past a tree rebuild on every node
            merges = _stats(cluster, "feed_scan_merges")
            again = await _all_ids(feed)
            local = list(server.storage.scan(cf, feed_prefix(b"rot"), feed_prefix(b"rot") + b"\xff" * 17))
            return ids, merges, again, _stats(cluster, "feed_scan_merges"), len(local)
        finally:
            await cluster.stop()

    ids, merges_before, again, merges_after, local = run_virtual(main())
    assert len(ids) == 300
    assert again == ids
    assert merges_after > merges_before
    assert local == 300


def test_one_writers_appends_keep_their_order_across_coordinators_with_skewed_clocks(tmp_path):
    """Appends take turns among the feed's replicas; a replica whose clock is
    behind still orders a writer's next entry after its previous one."""

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=12).start()
        try:
            await cluster.run_for(5)  # all members up, and known to the client
            for k, server in enumerate(cluster.servers):
                hlc = server.coordinator.replica.hlc
                real = hlc._physical
                hlc._physical = (lambda real, skew: lambda: real() - skew)(real, 20_000 * k)  # up to 40 s behind
            client = await cluster.client(0)
            feed = client.feed("ordered")
            appended = [await feed.aappend(b"%d" % i) for i in range(60)]
            mark = client.feed_marks[("default", b"ordered")][0]
            listed = await _all_ids(feed)
            coordinators = sum(1 for s in cluster.servers if s.feeds._recent)
            return appended, listed, coordinators, mark
        finally:
            await cluster.stop()

    from ringkv.feeds.ids import format_id

    appended, listed, coordinators, mark = run_virtual(main())
    assert listed == appended, "a writer's appends came back out of order"
    assert coordinators == 3, "appends should take turns among the feed's replicas"
    assert format_id(mark) == appended[-1], "the writer's next append carries its newest id"


def test_an_append_with_the_writers_last_id_sorts_after_it_on_a_replica_whose_clock_is_behind(tmp_path):
    from ringkv.feeds.messages import FeedAppend

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=13).start()
        try:
            await cluster.run_for(5)
            hlc = cluster.servers[2].coordinator.replica.hlc
            real = hlc._physical
            hlc._physical = lambda: real() - 60_000  # a minute behind
            client = await cluster.client(0)
            await client.akeyspace_create("solo", n=3, r=1, w=1)
            cluster.partition([0], [1, 2])  # node 2 never hears of the first entry
            deadline = asyncio.get_running_loop().time() + 5
            a = (await cluster.servers[0].feeds.append(FeedAppend("solo", b"f", b"a", 1), deadline)).entry_id
            blind = (await cluster.servers[2].feeds.append(FeedAppend("solo", b"f", b"b", 1), deadline)).entry_id
            after = (await cluster.servers[2].feeds.append(FeedAppend("solo", b"f", b"c", 1, after=a), deadline)).entry_id
            return a, blind, after
        finally:
            await cluster.stop()

    a, blind, after = run_virtual(main())
    assert blind < a, "the skewed clock should order an unaware append first (the test's premise)"
    assert after > a


def test_a_replica_that_hangs_on_a_digest_leaves_time_for_the_full_read(tmp_path):
    async def main():
        cluster, client = await _settled(str(tmp_path), 14)
        try:
            feed = client.feed("slow")
            ids = [await feed.aappend(b"%d" % i) for i in range(20)]
            _, hang = _second_replica_hangs(cluster, b"slow")
            hang()  # requests to it go unanswered
            t0 = asyncio.get_running_loop().time()
            got = await _all_ids(feed)
            return ids, got, asyncio.get_running_loop().time() - t0
        finally:
            await cluster.stop()

    ids, got, took = run_virtual(main())
    assert got == ids
    assert took < 4.0


def test_iterations_read_pages_ahead_exactly_and_a_new_iteration_sees_every_change(tmp_path):
    """The coordinator reads an iteration's next pages before they are asked for;
    pages read ahead for one iteration never stand in for another's."""

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=5).start()
        try:
            client = await cluster.client(1)
            feed = client.feed("ahead")
            await _fill(feed, 6000, b"e")
            ahead = lambda: sum(s.coordinator.stats["feed_pages_ahead"] for s in cluster.servers)  # noqa: E731
            ids = await _all_ids(feed)
            served_ahead = ahead()
            rev = await _all_ids(feed, reverse=True)
            first = [e.id async for e in feed.aiterate(limit=3000)]
            rest = [e.id async for e in feed.aiterate(ids[2999])]
            # an iteration abandoned after one entry leaves pages read ahead behind it
            it = feed.aiterate()
            await it.__anext__()
            await it.aclose()
            await feed.aremove(ids[5000])
            new = await feed.aappend(b"late")
            after = await _all_ids(feed)
            return ids, served_ahead, rev, first, rest, new, after
        finally:
            await cluster.stop()

    ids, served_ahead, rev, first, rest, new, after = run_virtual(main())
    assert len(ids) == 6000 and ids == sorted(ids)
    assert served_ahead >= 2, "pages after the first come from the read-ahead"
    assert rev == ids[::-1]
    assert first == ids[:3000] and rest == ids[3000:]
    assert after == ids[:5000] + ids[5001:] + [new]


def test_pages_read_ahead_wait_at_most_half_a_request_for_a_hung_replica(tmp_path):
    from ringkv.feeds.ids import format_id
    from ringkv.feeds.messages import FeedScan

    async def main():
        cluster, client = await _settled(str(tmp_path), 15)
        try:
            feed = client.feed("slow-pages")
            await _fill(feed, 5000)
            ids = await _all_ids(feed)
            server, hang = _second_replica_hangs(cluster, b"slow-pages")
            feeds = server.feeds
            loop = asyncio.get_running_loop()
            # a page read ahead for a patient request does not hold up an impatient one:
            # the replica hangs just as the second page is being read ahead
            page1 = (await feeds.scan(FeedScan("default", b"slow-pages", None, False, 128, None, 9, 2048), loop.time() + 20)).page()
            hang()
            t0 = loop.time()
            page2 = (await feeds.scan(FeedScan("default", b"slow-pages", page1[2], False, 2048, None, 9, 2048), loop.time() + 2)).page()
            took = loop.time() - t0
            got = await _all_ids(feed)  # and a whole iteration: every page answers within the client's 4 s
            return ids, got, page1[0] + page2[0], took
        finally:
            await cluster.stop()

    ids, got, pages, took = run_virtual(main())
    assert len(ids) == 5000 and got == ids
    assert [format_id(i) for i in pages] == ids[: 128 + 2048]
    assert took < 2.0


def test_a_session_id_reused_for_another_feed_or_direction_gets_pages_read_for_it(tmp_path):
    from ringkv.feeds.messages import FeedScan
    from ringkv.feeds.service import AHEAD_SESSIONS

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=16).start()
        try:
            client = await cluster.client(0)
            for name in ("a", "b"):
                await _fill(client.feed(name), 3000, name.encode())
            feeds = cluster.servers[0].feeds
            loop = asyncio.get_running_loop()

            async def page(session, feed, after, reverse=False, limit=128, ahead=2048):
                got = await feeds.scan(FeedScan("default", feed, after, reverse, limit, None, session, ahead), loop.time() + 5)
                return got.page()

            fresh = lambda feed, after, reverse=False, limit=128: page(0, feed, after, reverse, limit, 0)  # noqa: E731
            first = await page(7, b"a", None)
            await cluster.run_for(1)  # the next pages of "a" are read ahead meanwhile
            cursor = first[2]
            same = [
                (await page(7, b"a", cursor, reverse=True), await fresh(b"a", cursor, reverse=True)),
                (await page(7, b"b", cursor), await fresh(b"b", cursor)),
                (await page(7, b"a", cursor, limit=5), await fresh(b"a", cursor, limit=5)),
            ]
            # many iterations at once: only the most recent keep pages read ahead
            for session in range(100, 140):
                await page(session, b"b", None)
            await cluster.run_for(1)
            kept = len(feeds._streams)
            running = sum(1 for t in cluster.servers[0].coordinator._background if not t.done())
            return same, kept, running
        finally:
            await cluster.stop()

    same, kept, running = run_virtual(main())
    for got, want in same:
        assert got == want
    assert kept <= AHEAD_SESSIONS
    assert running == 0, "pages read ahead for dropped iterations stop"


def test_a_retried_remove_is_acknowledged_only_once_w_replicas_hold_the_tombstone(tmp_path):
    """The first try wrote the tombstone on its coordinator only; the retry must not trust that copy."""
    from ringkv.feeds.ids import parse_id
    from ringkv.feeds.messages import FeedRemove

    async def main():
        cluster, client = await _settled(str(tmp_path), 3)
        try:
            idx = {s.node_id: i for i, s in enumerate(cluster.servers)}
            a, b, c = (idx[n] for n in cluster.servers[0].ring.preference_list(b"f", 3))
            feed = (await cluster.client(a, timeout=3.0)).feed("f")
            ids = [await feed.aappend(b"e%d" % i) for i in range(5)]
            await cluster.run_for(2)
            coord = cluster.servers[a]
            read = coord.coordinator.read

            async def read_then_cut_off(*args, **kw):  # a partition between the remove's read and its write
                rec = await read(*args, **kw)
                cluster.partition([a], [b, c])
                return rec

            coord.coordinator.read = read_then_cut_off
            remove = FeedRemove("default", b"f", parse_id(ids[2]))
            with pytest.raises(RingKVError):
                await coord.feeds.remove(remove, asyncio.get_running_loop().time() + 3)
            coord.coordinator.read = read
            cluster.partition([a, b], [c])
            await coord.feeds.remove(remove, asyncio.get_running_loop().time() + 3)  # the retry: acknowledged
            cluster.partition([a], [b, c])  # the coordinator is cut off as it answers, then fails
            await cluster.crash(a)
            cluster.heal()
            await cluster.run_for(5)
            reader = (await cluster.client(b, timeout=5.0)).feed("f")
            return ids[2], await _all_ids(reader, r=2), await reader.aget(ids[2], r=2)
        finally:
            await cluster.stop()

    removed, seen, got = run_virtual(main())
    assert removed not in seen, "an acknowledged remove came back when its coordinator failed"
    assert got is None


def test_length_at_r_counts_what_an_iteration_at_r_returns_when_a_replica_missed_a_remove(tmp_path):
    """A remove acknowledged by two replicas; the one holding the third's hint fails; the third returns."""

    async def main():
        cluster, _ = await _settled(str(tmp_path), 2)
        try:
            idx = {s.node_id: i for i, s in enumerate(cluster.servers)}
            order = cluster.servers[0].ring.preference_list(b"f", 3)
            a, b, c = (idx[n] for n in order)
            feed = (await cluster.client(a, timeout=5.0)).feed("f")
            ids = [await feed.aappend(b"e%d" % i) for i in range(10)]
            await cluster.run_for(2)
            await cluster.crash(c)
            await cluster.wait_for(lambda: not cluster.servers[a].is_alive(order[2]), step=0.05)
            await feed.aremove(ids[3])  # acknowledged by a and b; a holds c's hint
            await cluster.crash(a)
            await cluster.restart(c)
            await cluster.run_for(5)
            reader = (await cluster.client(b, timeout=5.0)).feed("f")
            first = await reader.alength(r=2)
            seen = await _all_ids(reader, r=2)
            return first, seen, ids[3], await reader.alength(r=2)
        finally:
            await cluster.stop()

    first, seen, removed, again = run_virtual(main())
    assert removed not in seen and len(seen) == 9
    assert first == len(seen), "length(r=2) counted an entry whose remove was acknowledged"
    assert again == 9


def test_a_failing_flush_before_a_digest_read_falls_back_to_the_merged_read(tmp_path):
    """The node flushes (and, with fsync, syncs its log) before scanning its
    own page; when that fails the page comes from the merged read instead of
    failing the request."""
    from ringkv.errors import Unavailable

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=13).start()
        try:
            client = await cluster.client(0)
            feed = client.feed("flaky")
            await _fill(feed, 300)
            before = _stats(cluster, "feed_scan_merges")
            failures = []

            def failing_flush():
                failures.append(1)
                raise Unavailable("write-ahead log sync failed")

            for s in cluster.servers:
                s.feeds._flush = failing_flush
            ids = await _all_ids(feed)
            return ids, len(failures), _stats(cluster, "feed_scan_merges") - before
        finally:
            await cluster.stop()

    ids, failures, merges = run_virtual(main())
    assert len(ids) == 300 and ids == sorted(ids)
    assert failures > 0 and merges > 0
