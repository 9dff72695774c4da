# Write the JPEGs of make.py with one library: python write.py litdata|hf N
import pickle
import shutil
import sys
import time
from pathlib import Path

lib, N = sys.argv[1], int(sys.argv[2])
jpegs = pickle.loads(Path(f"/tmp/shard-libraries/jpegs_{N}.pkl").read_bytes())


def fn(i):
    return {"image": jpegs[i], "label": i % 10}


if __name__ == "__main__":
    out = f"/tmp/shard-libraries/{lib}_{N}"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    if lib == "litdata":
        import litdata

        litdata.optimize(
            fn=fn,
            inputs=list(range(N)),
            output_dir=out,
            chunk_bytes="32MB",
            num_workers=2,
            mode="overwrite",
        )
    else:
        import datasets

        ds = datasets.Dataset.from_dict(
            {"image": jpegs, "label": [i % 10 for i in range(N)]},
            features=datasets.Features(
                {"image": datasets.Value("binary"), "label": datasets.Value("int64")}
            ),
        )
        ds.save_to_disk(out, max_shard_size="32MB")
    print(lib, "write s", round(time.perf_counter() - t, 2))
