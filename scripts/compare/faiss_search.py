#!/usr/bin/env python3
"""Side-by-side timing of exact cosine top-k: reid-index vs faiss IndexFlatIP.

Makes L2-normalised random data (seeded), writes it as raw little-endian f32,
times our example binary `compare search` on those files and faiss-cpu
`IndexFlatIP` on the same arrays in the same run with the same thread count,
checks the two agree, measures the machine's sgemm peak (numpy matmul of two
4096x4096 float32 matrices on the same thread count) and prints one JSON line
per gallery size plus a summary table.

Build the binary first:
    cargo build --release --example compare
Run (thread count is fixed before numpy/faiss load):
    python scripts/compare/faiss_search.py --bin target/release/examples/compare \
        --sizes 10000,100000,1000000 --threads 2
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True, help="path to the compare example binary")
    p.add_argument("--sizes", default="10000,100000,1000000", help="gallery sizes, comma separated")
    p.add_argument("--nq", type=int, default=1000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="folder for the data files (default: a temp dir)")
    p.add_argument("--kernels", default="f32,auto",
                   help="our score kernels to time, comma separated: f32, bf16, amx, auto (amx where the CPU has AMX, else bf16 where it has AVX-512 BF16)")
    return p.parse_args()


args = parse()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
import faiss  # noqa: E402


def normed(rng, n, d):
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def sgemm_peak(threads, size=4096, reps=5):
    a = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(2).standard_normal((size, size), dtype=np.float32)
    a @ b  # warm up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * size**3 / best / 1e9


def time_faiss(q, g, k, repeat):
    index = faiss.IndexFlatIP(g.shape[1])
    index.add(g)
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = index.search(q, k)
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    peak = sgemm_peak(args.threads)
    tmp_ctx = tempfile.TemporaryDirectory(dir=args.tmp)
    tmp = tmp_ctx.name
    q = normed(rng, args.nq, args.dim)
    qpath = os.path.join(tmp, "q.f32")
    q.tofile(qpath)
    rows = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        g = normed(rng, n, args.dim)
        gpath = os.path.join(tmp, "g.f32")
        g.tofile(gpath)
        fs, (fd, fi) = time_faiss(q, g, args.k, args.repeat)
        flops = 2.0 * args.nq * n * args.dim
        for kernel in [k for k in args.kernels.split(",") if k]:
            ipath = os.path.join(tmp, "idx.u64")
            cmd = [args.bin, "search", "--queries", qpath, "--gallery", gpath, "--dim", str(args.dim), "--k", str(args.k),
                   "--threads", str(args.threads), "--repeat", str(args.repeat), "--out-indices", ipath,
                   "--kernel", kernel]
            ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            our_idx = np.fromfile(ipath, dtype=np.uint64).reshape(args.nq, -1).astype(np.int64)
            # Agreement: same top-1, and same top-k sets except where scores tie to ~1e-5.
            top1 = float(np.mean(our_idx[:, 0] == fi[:, 0]))
            setmatch = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(our_idx, fi)]))
            row = {
                "ng": n, "nq": args.nq, "dim": args.dim, "k": args.k, "threads": args.threads,
                "kernel": ours.get("kernel", kernel),
                "ours_s": ours["seconds_best"], "faiss_s": fs,
                "ratio_faiss_over_ours": fs / ours["seconds_best"],
                "ours_gflops": flops / ours["seconds_best"] / 1e9, "faiss_gflops": flops / fs / 1e9,
                "sgemm_peak_gflops": peak, "ours_pct_of_peak": 100 * flops / ours["seconds_best"] / 1e9 / peak,
                "top1_agreement": top1, "topk_set_agreement": setmatch,
                "faiss_version": faiss.__version__,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
        del g
    print(f"\nsgemm peak (numpy {args.threads} threads, 4096^3): {peak:.1f} GFLOP/s", file=sys.stderr)
    print(f"{'gallery':>9} {'kernel':>14} {'ours s':>8} {'faiss s':>8} {'faiss/ours':>10} {'our GFLOP/s':>11} {'% peak':>7} {'top-k agree':>11}",
          file=sys.stderr)
    for r in rows:
        print(f"{r['ng']:>9} {r['kernel']:>14} {r['ours_s']:>8.3f} {r['faiss_s']:>8.3f} {r['ratio_faiss_over_ours']:>10.2f} "
              f"{r['ours_gflops']:>11.1f} {r['ours_pct_of_peak']:>7.1f} {r['topk_set_agreement']:>11.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
