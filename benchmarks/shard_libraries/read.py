# Read every item in a random order: time per item, peak and current resident memory: python read.py litdata|hf N
import resource
import sys
import time
from pathlib import Path

import numpy as np

lib, N = sys.argv[1], int(sys.argv[2])
out = f"/tmp/shard-libraries/{lib}_{N}"


def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if lib == "litdata":
    import litdata

    ds = litdata.StreamingDataset(out)

    def get(i):
        return ds[int(i)]["image"]
else:
    import datasets

    ds = datasets.load_from_disk(out)

    def get(i):
        return ds[int(i)]["image"]


n = len(ds)
get(0)
before = rss()
order = np.random.default_rng(0).permutation(n)
t = time.perf_counter()
total = 0
for i in order:
    total += len(get(i))
dt = time.perf_counter() - t

status = Path("/proc/self/status").read_text()
anon = [line for line in status.splitlines() if line.startswith(("RssAnon", "RssFile"))]
print(
    lib,
    n,
    "random read us/item",
    round(dt / n * 1e6, 1),
    "maxrss MiB before",
    round(before),
    "after",
    round(rss()),
    anon,
)
