"""execnet's ssh gateway against the benchmark's sshd: prints the median
create + first reply (ms) and the round trip (us)."""
import statistics
import sys
import time

import execnet

cfg, reps, pings = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spec = "ssh=remexbench//ssh_config=" + cfg


def create():
    t0 = time.perf_counter()
    gw = execnet.makegateway(spec)
    gw.remote_exec("channel.send(1)").receive()
    t = time.perf_counter() - t0
    gw.exit()
    return t


c = statistics.median(create() for _ in range(reps)) * 1e3
gw = execnet.makegateway(spec)
ch = gw.remote_exec("for x in channel: channel.send(x)")
for i in range(200):
    ch.send(i)
    ch.receive()
t0 = time.perf_counter()
for i in range(pings):
    ch.send(i)
    ch.receive()
rtt = (time.perf_counter() - t0) / pings * 1e6
gw.exit()
print(c, rtt)
