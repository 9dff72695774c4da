# Synthetic JPEGs (128 x 160, ~6.4 KB) for the shard-library evaluation: python make.py N
import io
import os
import pickle
import sys
from pathlib import Path

import numpy as np
from PIL import Image

N = int(sys.argv[1])
rng = np.random.default_rng(0)
out = []
base = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
for i in range(N):
    small = np.roll(base, i, axis=0) ^ np.uint8(i % 256)
    img = Image.fromarray(small).resize((160, 128), Image.BILINEAR)
    b = io.BytesIO()
    img.save(b, "JPEG", quality=90)
    out.append(b.getvalue())
os.makedirs("/tmp/shard-libraries", exist_ok=True)
Path(f"/tmp/shard-libraries/jpegs_{N}.pkl").write_bytes(pickle.dumps(out))
print(N, sum(map(len, out)) / N, "bytes/jpeg")
