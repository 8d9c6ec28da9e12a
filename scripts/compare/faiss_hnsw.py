#!/usr/bin/env python3
"""faiss HNSW (or, with --index ivf, IndexIVFFlat) on the data of
reid-index's `hnsw_recall` example: build time, recall@1 / @10 against the
same exact top-10 and speed-up over the same exact search time, at several
efSearch (nprobe), same thread count, same M and efConstruction (for IVF the
same list count, training sample of 64 rows per list and 10 k-means
iterations as `Gallery::build_ivf`). Prints one JSON line per efSearch.

    cargo run --release -p reid-index --features hnsw --example hnsw_recall -- \\
        --n 1000000 --dim 256 --nq 1000 --threads 2 --engines ours --dump /tmp/ann
    ~/.cache/animal-reid/torch-2.11.0/bin/python scripts/compare/faiss_hnsw.py --dir /tmp/ann --threads 2
    ~/.cache/animal-reid/torch-2.11.0/bin/python scripts/compare/faiss_hnsw.py --dir /tmp/ann --threads 2 \\
        --index ivf --lists 4000 --ef 1,2,4,8
"""

import argparse
import json
import os
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=100)
    ap.add_argument("--ef", default="16,32,64,128", help="efSearch (HNSW) or nprobe (IVF) values")
    ap.add_argument("--index", choices=["hnsw", "ivf"], default="hnsw")
    ap.add_argument("--lists", type=int, default=0, help="IVF lists (default round(4 sqrt(n)))")
    a = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(a.threads)
    meta = json.load(open(os.path.join(a.dir, "meta.json")))
    n, d, nq, k = meta["n"], meta["dim"], meta["nq"], meta["k"]
    g = np.fromfile(os.path.join(a.dir, "gallery.f32"), dtype="<f4").reshape(n, d)
    q = np.fromfile(os.path.join(a.dir, "queries.f32"), dtype="<f4").reshape(nq, d)
    exact = np.fromfile(os.path.join(a.dir, "exact.u64"), dtype="<u8").reshape(nq, k).astype(np.int64)
    t = time.perf_counter()
    if a.index == "ivf":
        lists = a.lists or min(n, round(4 * n ** 0.5))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.spherical = True
        index.cp.max_points_per_centroid = 64
        sample = np.random.default_rng(0).choice(n, min(n, 64 * lists), replace=False)
        index.train(g[np.sort(sample)])
        name = f"faiss-{faiss.__version__} IndexIVFFlat({lists})"
    else:
        index = faiss.IndexHNSWFlat(d, a.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = a.efc
        name = f"faiss-{faiss.__version__} IndexHNSWFlat"
    index.add(g)
    build = time.perf_counter() - t
    for ef in [int(x) for x in a.ef.split(",")]:
        if a.index == "ivf":
            index.nprobe = ef
        else:
            index.hnsw.efSearch = ef
        t = time.perf_counter()
        _, found = index.search(q, k)
        s = time.perf_counter() - t
        r1 = float(np.mean(found[:, 0] == exact[:, 0]))
        r10 = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(found, exact)]))
        print(json.dumps({
            "engine": name, "n": n, "dim": d, "nq": nq,
            "threads": a.threads, "m": a.m, "ef_construction": a.efc, "ef": ef, "build_s": build,
            "exact_s": meta["exact_s"], "approx_s": s, "speedup": meta["exact_s"] / s,
            "recall_at_1": r1, "recall_at_10": r10,
        }), flush=True)


if __name__ == "__main__":
    main()
