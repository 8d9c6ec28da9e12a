#!/usr/bin/env python
"""Export a timm model for animal-reid: safetensors weights and/or TorchScript.

The model comes from timm (``timm.create_model``): a timm name with ImageNet
weights, a Hugging Face hub id ``hf-hub:<org>/<name>`` (e.g. MegaDescriptor),
or any timm architecture with a local checkpoint (``--checkpoint``, loaded by
timm's ``load_checkpoint``, which handles ``state_dict`` wrappers and
``module.`` prefixes).

Outputs (give one or both):

``--safetensors FILE``
    the state dict with timm's key names unchanged, for the architectures
    reid-backbone implements natively (read with
    ``reid_backbone::state_dict::read``).
``--torchscript FILE``
    the model traced with ``torch.jit.trace`` at a fixed input size, for any
    architecture (read with ``reid_backbone::torchscript::TorchScriptModel``).
    The traced module maps a float batch ``[B, 3, H, W]`` to embeddings
    ``[B, D]`` (timm's pooled pre-logits features).

Beside each output, ``<output stem>.json`` describes the preprocessing the
model expects: input size, mean, std, interpolation, crop_pct, and the
embedding width.

By default the classifier is removed (``reset_classifier(0)``); with
``--keep-classifier`` the safetensors file keeps the head weights (the
TorchScript module still returns pre-logits features).

Examples::

    # MegaDescriptor-L-384 from the hub (needs network, or a filled HF cache)
    python scripts/export_model.py hf-hub:BVRA/MegaDescriptor-L-384 \\
        --torchscript out/megadescriptor-l-384.pt

    # a fine-tuned ConvNeXt checkpoint with 500 identity classes, both formats
    python scripts/export_model.py convnext_tiny --checkpoint runs/best.pth \\
        --num-classes 500 --safetensors out/convnext_tiny.safetensors \\
        --torchscript out/convnext_tiny.pt

    # a ViT at another input size (timm resamples the position embedding)
    python scripts/export_model.py vit_small_patch14_dinov2.lvd142m \\
        --model-kwargs '{"img_size": 224}' --img-size 224 --torchscript out/dinov2_s.pt

    # offline smoke test with random weights (no hub needed)
    python scripts/export_model.py test_vit --no-pretrained --seed 0 \\
        --safetensors /tmp/test_vit.safetensors --torchscript /tmp/test_vit.pt

Model hubs must be reachable for ``--pretrained`` (the default unless
``--checkpoint`` is given) and for every ``hf-hub:`` name (timm fetches the
model's config from the hub even without weights). Tracing runs on the CPU by
default; the saved TorchScript loads on any device.
"""

import argparse
import json
import os
import sys

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (python -m pydoc scripts/export_model.py) for examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="timm model name, or hf-hub:<org>/<name>")
    p.add_argument("--checkpoint", default="", help="local checkpoint to load (timm load_checkpoint)")
    p.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="load timm's pretrained weights (default: yes, unless --checkpoint is given)",
    )
    p.add_argument("--num-classes", type=int, default=None, help="classifier width of the checkpoint")
    p.add_argument("--keep-classifier", action="store_true", help="keep the head in the safetensors file")
    p.add_argument("--model-kwargs", default="{}", help="JSON dict of extra timm.create_model arguments")
    p.add_argument("--img-size", type=int, default=None, help="square trace size (default: the model's)")
    p.add_argument("--batch-size", type=int, default=2, help="batch size of the tracing input")
    p.add_argument("--safetensors", default=None, help="write the state dict here")
    p.add_argument("--torchscript", default=None, help="write the traced model here")
    p.add_argument("--device", default="cpu", help="device to trace on (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights and the check input")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    args = p.parse_args(argv)
    if not args.safetensors and not args.torchscript:
        p.error("give --safetensors and/or --torchscript")
    if args.pretrained is None:
        args.pretrained = not args.checkpoint
    try:
        args.model_kwargs = json.loads(args.model_kwargs)
        assert isinstance(args.model_kwargs, dict)
    except (ValueError, AssertionError):
        p.error("--model-kwargs must be a JSON object")
    return args


def create(args):
    """Builds the timm model in eval mode (classifier removed unless kept)."""
    import timm

    torch.manual_seed(args.seed)
    kwargs = dict(args.model_kwargs)
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    model = timm.create_model(
        args.model,
        pretrained=args.pretrained,
        checkpoint_path=args.checkpoint or "",
        **kwargs,
    )
    if not args.keep_classifier:
        model.reset_classifier(0)
    return model.eval()


class PreLogits(torch.nn.Module):
    """timm's pooled pre-logits features, whatever the classifier."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def data_config(model, img_size):
    import timm.data

    cfg = timm.data.resolve_data_config({}, model=model)
    if img_size is not None:
        cfg["input_size"] = (3, img_size, img_size)
    return cfg


def sidecar_path(output):
    return os.path.splitext(output)[0] + ".json"


def export(args, log=print):
    """Runs the export; returns the sidecar, the output paths, the traced-vs-eager
    difference, the eager embedder and the state-dict keys (a dict)."""
    import timm

    model = create(args)
    cfg = data_config(model, args.img_size)
    _, h, w = cfg["input_size"]
    device = torch.device(args.device)
    model = model.to(device)
    embedder = model if not args.keep_classifier else PreLogits(model)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, 3, h, w, generator=gen).to(device)
    with torch.no_grad():
        emb = embedder(x)
    if emb.ndim != 2 or emb.shape[0] != args.batch_size:
        raise SystemExit(f"{args.model}: output shape {tuple(emb.shape)} is not [B, D]")
    meta = {
        "model": args.model,
        "input_size": [3, h, w],
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": cfg.get("interpolation", "bicubic"),
        "crop_pct": float(cfg.get("crop_pct", 1.0)),
        "embedding_dim": int(emb.shape[1]),
        "checkpoint": args.checkpoint or None,
        "pretrained": bool(args.pretrained),
        "timm_version": timm.__version__,
        "torch_version": torch.__version__,
        "files": [],
    }
    outputs = []
    result = {"max_trace_diff": None}
    if args.safetensors:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        # safetensors refuses tensors that share memory; clone those.
        seen = set()
        for k, v in state.items():
            ptr = v.data_ptr()
            if ptr in seen and v.numel() > 0:
                state[k] = v.clone()
            seen.add(ptr)
        os.makedirs(os.path.dirname(os.path.abspath(args.safetensors)), exist_ok=True)
        save_file(state, args.safetensors, metadata={"model": args.model})
        outputs.append(args.safetensors)
        log(f"wrote {args.safetensors} ({len(state)} tensors)")
    if args.torchscript:
        import warnings

        if args.quiet:
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(embedder, x)
            x2 = torch.randn(args.batch_size, 3, h, w, generator=gen).to(device)
            diff = (traced(x2) - embedder(x2)).abs().max().item()
        result["max_trace_diff"] = diff
        os.makedirs(os.path.dirname(os.path.abspath(args.torchscript)), exist_ok=True)
        torch.jit.save(traced, args.torchscript)
        outputs.append(args.torchscript)
        log(f"wrote {args.torchscript} (traced at {args.batch_size}x3x{h}x{w}; max |traced - eager| = {diff:.3g})")
    for stem_json in sorted({sidecar_path(o) for o in outputs}):
        files = [os.path.basename(o) for o in outputs if sidecar_path(o) == stem_json]
        side = dict(meta, files=files)
        with open(stem_json, "w") as f:
            json.dump(side, f, indent=1)
        log(f"wrote {stem_json}")
    result["sidecar"] = meta
    result["outputs"] = outputs
    result["embedder"] = embedder
    result["state_dict_keys"] = list(model.state_dict().keys())
    return result


def main(argv=None):
    args = parse_args(argv)
    log = (lambda *_: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    export(args, log)


if __name__ == "__main__":
    main()
