"""execnet's side of `cargo xtask bench`: the same measurements, printed as
one JSON object. Run by remex-bench with the same counts."""
import json
import statistics
import sys
import time

import execnet

reps, pings, msgs, bulk_mb, chunk = (int(x) for x in sys.argv[1:6])


def median_of(fn, n):
    return statistics.median(fn() for _ in range(n))


def create_first_reply():
    t0 = time.perf_counter()
    gw = execnet.makegateway("popen")
    ch = gw.remote_exec("channel.send(1)")
    ch.receive()
    t = time.perf_counter() - t0
    gw.exit()
    return t


out = {"create_ms": median_of(create_first_reply, reps) * 1e3}
gw = execnet.makegateway("popen")

ch = gw.remote_exec("for x in channel: channel.send(x)")
for i in range(200):
    ch.send(i)
    ch.receive()


def pingpong():
    t0 = time.perf_counter()
    for i in range(pings):
        ch.send(i)
        ch.receive()
    return (time.perf_counter() - t0) / pings


out["rtt_us"] = median_of(pingpong, 5) * 1e6
ch.close()


def oneway():
    c = gw.remote_exec(
        "n = channel.receive()\nfor i in range(n):\n    channel.send(i)\n"
    )
    t0 = time.perf_counter()
    c.send(msgs)
    for _ in range(msgs):
        c.receive()
    t = time.perf_counter() - t0
    c.waitclose()
    return msgs / t


out["msgs_per_s"] = median_of(oneway, 3)


def bulk():
    c = gw.remote_exec(
        "total, chunk = channel.receive()\n"
        "data = b'x' * chunk\n"
        "for _ in range(total // chunk):\n    channel.send(data)\n"
    )
    total = bulk_mb * 1024 * 1024
    t0 = time.perf_counter()
    c.send((total, chunk))
    got = 0
    for _ in range(total // chunk):
        got += len(c.receive())
    t = time.perf_counter() - t0
    c.waitclose()
    assert got == total
    return got / t / 1e6


out["bulk_mb_s"] = median_of(bulk, 3)
gw.exit()


def group8():
    t0 = time.perf_counter()
    group = execnet.Group(["popen"] * 8)
    mch = group.remote_exec("channel.send(1)")
    assert len(mch.receive_each()) == 8
    group.terminate(timeout=1)
    return time.perf_counter() - t0


out["group8_ms"] = median_of(group8, min(reps, 5)) * 1e3
print(json.dumps(out))
