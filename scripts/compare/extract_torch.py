#!/usr/bin/env python3
"""Side by side: image files to embeddings, animal-reid (Rust, libtorch) against
PyTorch eager (Python), same torch (2.11.0), same model and weights, same
preprocessing, same thread count, same files, in one run.

The files are the lion photos of ../shared/datasets/lion and large photo-like
2000x1500 JPEGs made here (seeded). For each backbone and set the script runs

* ours: ``compare extract`` (built with ``cargo build --release --example
  compare``) in each precision asked for (``--precisions f32,bf16``; bf16
  needs a CPU with AVX-512 BF16), which prints preprocessing-only,
  model-only and end-to-end images/s;
* PyTorch at its defaults: PIL decode + resize + centre crop + normalise (the
  timm eval transform with the same size, crop_pct, filter, mean and std) and
  the same model in eval mode under ``torch.inference_mode()``, f32, NCHW,
  both single-process and with a ``DataLoader`` of 2 workers (the faster of
  the two counts);
* PyTorch's own best CPU setting: the same with the model and batches in
  channels-last and the forward under ``torch.autocast("cpu",
  dtype=torch.bfloat16)`` (only when bf16 is asked for),

then prints images/s and the ratios: ours / PyTorch eager f32, and ours /
PyTorch's best, stage by stage.

Usage (from the repository root, after ``scripts/setup.sh``)::

    ~/.cache/animal-reid/torch-2.11.0/bin/python scripts/compare/extract_torch.py \
        --backbones mobilenet_v2,efficientnet_lite2,convnext_tiny --precisions f32,bf16 \
        --threads 2 --limit 128 --large 0
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from common import shared_dir, weights_dir  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def torch_model(name):
    """The PyTorch model equal to our registry entry `name`."""
    if name.startswith("efficientnet_lite"):
        from efficientnet_lite_pytorch import EfficientNet

        files = {
            "efficientnet_lite0": "efficientnet-lite0-57934424.pth",
            "efficientnet_lite1": "efficientnet-lite1-77cc7160.pth",
            "efficientnet_lite2": "efficientnet-lite2-9656183e.pth",
        }
        model = EfficientNet.from_name(name.replace("_", "-"))
        model.load_state_dict(torch.load(os.path.join(weights_dir(), files[name]), map_location="cpu"))
        return model
    if name == "mobilenet_v2":
        import torchvision

        model = torchvision.models.mobilenet_v2()
        model.load_state_dict(torch.load(os.path.join(weights_dir(), "mobilenet_v2-b0353104.pth"), map_location="cpu"))
        return model
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False)


def features(model, name, x):
    """Pooled features, as our backbone computes before normalising."""
    if name.startswith("efficientnet_lite"):
        f = model.extract_features(x)
        return f.mean((2, 3))
    if name == "mobilenet_v2":
        return model.features(x).mean((2, 3))
    return model.forward_head(model.forward_features(x), pre_logits=True)


class Files(torch.utils.data.Dataset):
    def __init__(self, paths, cfg):
        self.paths = paths
        size = cfg["input_size"]
        self.size = size
        self.shorter = int(np.floor(size / cfg["crop_pct"]))
        self.filter = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}[
            cfg["interpolation"]
        ]
        self.mean = torch.tensor(cfg["mean"]).view(3, 1, 1)
        self.std = torch.tensor(cfg["std"]).view(3, 1, 1)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = Image.open(self.paths[i]).convert("RGB")
        w, h = img.size
        if w < h:
            nw, nh = self.shorter, int(self.shorter * h / w)
        else:
            nw, nh = int(self.shorter * w / h), self.shorter
        img = img.resize((nw, nh), self.filter)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        img = img.crop((left, top, left + self.size, top + self.size))
        t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
        return (t - self.mean) / self.std


def peer(paths, cfg, name, batch, threads, workers, repeat, best_setting=False):
    """PyTorch's images/s; ``best_setting``: channels-last + CPU bf16 autocast."""
    torch.set_num_threads(threads)
    model = torch_model(name).eval()
    if best_setting:
        model = model.to(memory_format=torch.channels_last)
    ds = Files(paths, cfg)

    def forward(x):
        if not best_setting:
            return features(model, name, x)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return features(model, name, x).float()

    def run(loader):
        with torch.inference_mode():
            for x in loader:
                f = forward(x)
                torch.nn.functional.normalize(f, dim=1)

    def best(fn):
        t = float("inf")
        for _ in range(repeat):
            s = time.perf_counter()
            fn()
            t = min(t, time.perf_counter() - s)
        return t

    n = len(paths)
    loader0 = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=0)
    run([next(iter(loader0))])  # warm-up
    pre_s = best(lambda: [None for _ in loader0])
    x = next(iter(loader0))
    steps = -(-n // x.shape[0])

    def model_only():
        with torch.inference_mode():
            for _ in range(steps):
                forward(x)

    model_s = best(model_only) * n / (steps * x.shape[0])
    single_s = best(lambda: run(loader0))
    out = {"preprocess_img_per_s": n / pre_s, "model_img_per_s": n / model_s, "single_process_img_per_s": n / single_s}
    if workers > 0:
        loaderw = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, persistent_workers=True)
        out["dataloader_img_per_s"] = n / best(lambda: run(loaderw))
    out["end_to_end_img_per_s"] = max(out["single_process_img_per_s"], out.get("dataloader_img_per_s", 0.0))
    return out


def large_jpegs(folder, n):
    rng = np.random.default_rng(2025)
    paths = []
    yy, xx = np.mgrid[0:1500, 0:2000].astype(np.float32)
    for i in range(n):
        k = 1.0 + 0.37 * i
        noise = rng.integers(0, 32, size=(1500, 2000), dtype=np.int32)
        r = 128 + 90 * np.sin(k * 9 * xx / 2000 + 3 * yy / 1500) + noise
        g = 100 + 80 * np.cos(k * 5 * (yy / 1500) * (xx / 2000) + 2) + noise
        b = 60 + 60 * (yy / 1500) * (1 + np.sin(30 * xx / 2000)) + noise
        img = np.stack([r, g, b], axis=2).clip(0, 255).astype(np.uint8)
        p = os.path.join(folder, f"large_{i:02d}.jpg")
        Image.fromarray(img).save(p, quality=90)
        paths.append(p)
    return paths


def lion_paths():
    import csv

    root = os.path.join(shared_dir(), "datasets", "lion")
    with open(os.path.join(root, "lion.csv")) as f:
        return [os.path.join(root, r["path"]) for r in csv.DictReader(f)]


STAGES = ("preprocess", "model", "end_to_end")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbones", "--backbone", default="efficientnet_lite2",
                    help="comma-separated registry names (seeded weights where none are bundled)")
    ap.add_argument("--precisions", default="f32", help="ours: comma-separated, f32 and/or bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the second PyTorch variant")
    ap.add_argument("--large", type=int, default=64, help="number of large synthetic JPEGs (0: none)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N lion photos (0: all 740)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--ours",
        default=os.path.join(
            os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples", "compare"
        ),
    )
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if not os.path.exists(args.ours):
        sys.exit(f"{args.ours} not found: cargo build --release --example compare")
    backbones = [b for b in args.backbones.split(",") if b]
    precisions = [p for p in args.precisions.split(",") if p]
    bad = [p for p in precisions if p not in ("f32", "bf16")]
    if bad:
        sys.exit(f"--precisions: {bad}; use f32 and/or bf16")
    bundled = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        lions = lion_paths()
        if args.limit > 0:
            lions = lions[: args.limit]
        sets = {"lion": lions}
        if args.large > 0:
            sets["large_2000x1500"] = large_jpegs(tmp, args.large)
        for backbone in backbones:
            extra = [] if backbone in bundled else ["--random-init", "0"]
            for label, paths in sets.items():
                lst = os.path.join(tmp, f"{label}.txt")
                with open(lst, "w") as f:
                    f.write("\n".join(paths))
                row = {"images": len(paths)}
                for precision in precisions:
                    cmd = [args.ours, "extract", "--backbone", backbone, "--list", lst, "--threads", str(args.threads),
                           "--batch-size", str(args.batch_size), "--repeat", str(args.repeat),
                           "--precision", precision] + extra
                    row[f"ours_{precision}"] = json.loads(
                        subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                cfg = row[f"ours_{precisions[0]}"]
                row["pytorch_eager_f32"] = peer(paths, cfg, backbone, args.batch_size, args.threads, args.workers,
                                                args.repeat)
                if "bf16" in precisions:
                    row["pytorch_cl_bf16_autocast"] = peer(paths, cfg, backbone, args.batch_size, args.threads,
                                                           args.workers, args.repeat, best_setting=True)
                results[f"{backbone}/{label}"] = row
    print(f"batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}; images/s")
    peers = ["pytorch_eager_f32"] + (["pytorch_cl_bf16_autocast"] if "bf16" in precisions else [])
    cols = [f"ours_{p}" for p in precisions] + peers
    head = f"{'backbone/set':34} {'stage':11}" + "".join(f" {c:>24}" for c in cols)
    print(head)
    for key, row in results.items():
        for stage in STAGES:
            cells = "".join(f" {row[c][f'{stage}_img_per_s']:24.1f}" for c in cols)
            print(f"{key:34} {stage:11}{cells}")
    print()
    for key, row in results.items():
        for p in precisions:
            ours = row[f"ours_{p}"]
            for peer_name in peers:
                for stage in ("model", "end_to_end"):
                    r = ours[f"{stage}_img_per_s"] / row[peer_name][f"{stage}_img_per_s"]
                    row.setdefault("ratios", {})[f"ours_{p}/{peer_name}/{stage}"] = r
                    print(f"ratio {key}: ours {p} / {peer_name}, {stage}: {r:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
