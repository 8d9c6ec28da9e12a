#!/usr/bin/env python3
"""Side-by-side t-SNE: reid-eval (native Barnes-Hut, or linfa-tsne) vs scikit-learn vs openTSNE.

In one run, on the same data and with the thread count fixed before numpy loads:

1. our example binary ``compare tsne`` generates seeded clustered unit vectors
   (``--n`` x ``--dim``, ``--clusters`` clusters), saves them as .npy, embeds them
   and times the embedding;
2. scikit-learn ``TSNE(method="barnes_hut")`` and openTSNE ``TSNE(negative_gradient_method="bh")``
   embed the very same array, timed around ``fit_transform`` / ``fit``;
3. all three embeddings are scored with the same exact KL divergence: the Rust
   binary's ``--score`` mode (``reid_eval::tsne::Affinities``: scikit-learn's exact
   objective, P over all pairs, Student-t with one degree of freedom). With
   ``--sklearn-kl`` the same three are also scored by scikit-learn's own
   ``_joint_probabilities`` + ``_kl_divergence`` as a cross-check (O(n^2) memory).

Settings are matched: perplexity 30, theta 0.5, exact k-NN (k = 3 * perplexity + 1),
early exaggeration 12 for 250 iterations, momentum 0.5 then 0.8, the same total number
of iterations (openTSNE's ``n_iter`` counts only those after early exaggeration), the
same initialisation (``--init``, default PCA, scikit-learn's default) and the same step:
``--learning-rate`` is in scikit-learn's units (its gradient carries the factor 4, as
ours does); openTSNE's gradient lacks it, so openTSNE gets 4x the number. The default,
``auto``, is each library's own rule, which is the same step for all three:
scikit-learn's and ours ``max(n / 12 / 4, 50)``, openTSNE's ``n / 12``. scikit-learn
keeps its default stopping rules (``n_iter_without_progress=300``,
``min_grad_norm=1e-7``); the iterations it actually ran are reported. All three get
``--threads``. ``--engine linfa`` runs linfa-tsne instead of our native engine
(single-threaded, learning rate fixed at 200 in bhtsne's units = 50 in
scikit-learn's, random initialisation: pass ``--learning-rate 50 --init random`` to
match the others to it).

Build the binary first:
    cargo build --release --example compare
Run:
    /root/.cache/animal-reid/torch-2.11.0/bin/python scripts/compare/tsne_compare.py \\
        --bin target/release/examples/compare --threads 2
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True, help="path to the compare example binary")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--spread", type=float, default=0.5)
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--theta", type=float, default=0.5, help="Barnes-Hut angle, all three")
    p.add_argument("--max-iter", type=int, default=1000, help="total iterations, early exaggeration included")
    p.add_argument("--exaggeration-iter", type=int, default=250)
    p.add_argument("--learning-rate", default="auto",
                   help="scikit-learn's units (openTSNE gets 4x); 'auto' for each library's own rule")
    p.add_argument("--init", default="pca", choices=["random", "pca"], help="initialisation, all three")
    p.add_argument("--engine", default="native", choices=["native", "linfa"], help="our engine")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", default="", help="comma-separated: sklearn,opentsne")
    p.add_argument("--sklearn-kl", action="store_true", help="also score with scikit-learn's exact KL")
    p.add_argument("--tmp", default=None, help="folder for the data files (default: a temp dir)")
    return p.parse_args()


args = parse()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.manifold import TSNE as SkTSNE  # noqa: E402


def lr(opentsne_units=False):
    """The learning rate; openTSNE's gradient lacks scikit-learn's factor 4, so it gets 4x."""
    if args.learning_rate == "auto":
        return "auto"
    return float(args.learning_rate) * (4.0 if opentsne_units else 1.0)


def run_ours(tmp):
    data = os.path.join(tmp, "data.npy")
    emb = os.path.join(tmp, "ours.npy")
    cmd = [args.bin, "tsne", "--n", str(args.n), "--dim", str(args.dim), "--clusters", str(args.clusters),
           "--spread", str(args.spread), "--data-seed", str(args.seed), "--save-data", data,
           "--out-embedding", emb, "--perplexity", str(args.perplexity), "--theta", str(args.theta),
           "--max-iter", str(args.max_iter), "--exaggeration-iter", str(args.exaggeration_iter),
           "--seed", str(args.seed), "--threads", str(args.threads), "--no-kl", "--engine", args.engine]
    if args.engine == "native":
        cmd += ["--learning-rate", args.learning_rate, "--init", args.init]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    out["process_s"] = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the whole process (data generation and saving included; small next to the t-SNE).
    out["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return data, emb, out


def run_sklearn(x, tmp):
    model = SkTSNE(n_components=2, perplexity=args.perplexity, early_exaggeration=12.0,
                   learning_rate=lr(), max_iter=args.max_iter, init=args.init, method="barnes_hut", angle=args.theta,
                   n_jobs=args.threads, random_state=args.seed)
    t, c = time.perf_counter(), time.process_time()
    y = model.fit_transform(x)
    s, cpu = time.perf_counter() - t, time.process_time() - c
    path = os.path.join(tmp, "sklearn.npy")
    np.save(path, np.ascontiguousarray(y, dtype=np.float64))
    return path, {"seconds": s, "cpu_s": cpu, "n_iter": int(model.n_iter_), "own_kl": float(model.kl_divergence_),
                  "version": sklearn.__version__, "learning_rate": float(model.learning_rate_)}


def run_opentsne(x, tmp):
    import openTSNE

    model = openTSNE.TSNE(n_components=2, perplexity=args.perplexity, learning_rate=lr(opentsne_units=True),
                          early_exaggeration_iter=args.exaggeration_iter, early_exaggeration=12.0,
                          n_iter=args.max_iter - args.exaggeration_iter, theta=args.theta,
                          initialization=args.init, initial_momentum=0.5, final_momentum=0.8,
                          negative_gradient_method="bh", neighbors="exact", n_jobs=args.threads,
                          random_state=args.seed, verbose=False)
    t, c = time.perf_counter(), time.process_time()
    y = model.fit(x)
    s, cpu = time.perf_counter() - t, time.process_time() - c
    path = os.path.join(tmp, "opentsne.npy")
    np.save(path, np.ascontiguousarray(np.asarray(y), dtype=np.float64))
    return path, {"seconds": s, "cpu_s": cpu, "n_iter": args.max_iter, "own_kl": float(y.kl_divergence),
                  "version": openTSNE.__version__}


def sklearn_exact_kl(x, y):
    from sklearn.manifold._t_sne import _joint_probabilities, _kl_divergence
    from sklearn.metrics import pairwise_distances

    p = _joint_probabilities(pairwise_distances(x, squared=True), args.perplexity, 0)
    return float(_kl_divergence(y.ravel().astype(np.float64), p, 1, y.shape[0], y.shape[1])[0])


def main():
    tmp_ctx = tempfile.TemporaryDirectory(dir=args.tmp)
    tmp = tmp_ctx.name
    skip = set(s for s in args.skip.split(",") if s)
    load0 = os.getloadavg()
    data, ours_path, ours = run_ours(tmp)
    x = np.load(data).astype(np.float64)
    assert x.shape == (args.n, args.dim), x.shape
    rows = {"ours": {"seconds": ours["tsne_s"], "cpu_s": ours["process_cpu_s"], "n_iter": args.max_iter, "own_kl": None,
                     "version": ours["implementation"]}}
    paths = {"ours": ours_path}
    if "sklearn" not in skip:
        paths["sklearn"], rows["sklearn"] = run_sklearn(x, tmp)
    if "opentsne" not in skip:
        paths["opentsne"], rows["opentsne"] = run_opentsne(x, tmp)
    names = list(paths)
    cmd = [args.bin, "tsne", "--input", data, "--perplexity", str(args.perplexity), "--threads", str(args.threads),
           "--score", ",".join(paths[k] for k in names)]
    scored = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    for k, s in zip(names, scored["scores"]):
        rows[k]["exact_kl"] = s["kl"]
    if args.sklearn_kl:
        for k in names:
            rows[k]["sklearn_exact_kl"] = sklearn_exact_kl(x, np.load(paths[k]))
    t_ours = rows["ours"]["seconds"]
    for k in names:
        rows[k]["time_over_ours"] = rows[k]["seconds"] / t_ours
    summary = {
        "n": args.n, "dim": args.dim, "clusters": args.clusters, "perplexity": args.perplexity,
        "theta": args.theta, "max_iter": args.max_iter, "learning_rate": args.learning_rate,
        "init": args.init, "threads": args.threads, "seed": args.seed,
        "kl_scoring_affinity_s": scored["affinity_s"], "load_average_before": load0,
        "load_average_after": os.getloadavg(), "results": rows,
    }
    print(json.dumps(summary), flush=True)
    print(f"\n{args.n} x {args.dim}, {args.clusters} clusters, perplexity {args.perplexity}, "
          f"theta {args.theta}, {args.max_iter} iterations, {args.threads} threads "
          f"(ours: {rows['ours']['version']}, learning rate {ours['learning_rate']}, init {args.init})", file=sys.stderr)
    head = f"{'method':>9} {'seconds':>9} {'cpu s':>8} {'x ours':>7} {'iters':>6} {'exact KL':>9} {'own KL':>9}"
    if args.sklearn_kl:
        head += f" {'sklearn KL':>10}"
    print(head, file=sys.stderr)
    for k in names:
        r = rows[k]
        own = "" if r["own_kl"] is None else f"{r['own_kl']:.4f}"
        line = (f"{k:>9} {r['seconds']:>9.2f} {r['cpu_s']:>8.2f} {r['time_over_ours']:>7.2f} {r['n_iter']:>6} "
                f"{r['exact_kl']:>9.4f} {own:>9}")
        if args.sklearn_kl:
            line += f" {r['sklearn_exact_kl']:>10.4f}"
        print(line, file=sys.stderr)
    print(f"load average before / after: {load0} / {os.getloadavg()}", file=sys.stderr)
    print("x ours = that method's wall time / our wall time (> 1: we are faster). exact KL: reid_eval::tsne::Affinities;"
          " own KL: the method's own (approximate, sparse-P) estimate.", file=sys.stderr)


if __name__ == "__main__":
    main()
