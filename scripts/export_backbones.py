#!/usr/bin/env python3
"""Export ImageNet backbones as TorchScript feature extractors for the C++ side.

Each exported module maps a float tensor [B, 3, S, S] (normalized with the
model's own mean/std, recorded in the metadata) to features [B, featureDim].
Only the final classification Linear is replaced by torch.nn.Identity; the
pooling and the final normalization of each architecture are kept.

Models (names accepted on the command line):

    name          library      architecture             featureDim  convolutional
    resnet18      torchvision  resnet18                 512         yes  (small test model)
    resnet152     torchvision  resnet152                2048        yes
    efficientnet  torchvision  efficientnet_v2_m        1280        yes
    convnext      torchvision  convnext_base            1024        yes
    vit           torchvision  vit_b_16                 768         no
    swin          torchvision  swin_b                   1024        no
    beit          timm         beit_base_patch16_224    768         no
    all           = the six big ones (everything except resnet18)

For every model NAME the script writes, into --out (default ``models``):

    NAME.pt        the TorchScript module (torch.jit.script where possible,
                   torch.jit.trace where it must; see --method)
    NAME.json      metadata (format "lumbar-stenosis-backbone", version 1)
    registry.json  index of all exported models, merged with an existing one

Files are written to temporary names and renamed into place only after the
reloaded module has been checked against the eager model (eval mode, within
1e-4 * (1 + max|eager output|)), the output shape is [B, featureDim], the
parameter names match the eager model's registration order, and the module
also runs in train mode.

Weights:

    (default)              random weights, seeded by --seed (reproducible with
                           the same torch version). Printed loudly and recorded
                           as "pretrained": false in the metadata. Good for
                           smoke tests only.
    --pretrained           ImageNet weights: a --weights file where given, else
                           the library's download (torchvision DEFAULT weights,
                           i.e. its best ImageNet-1K weights; timm
                           pretrained=True). If the download fails (offline
                           machine) the script stops with a message telling you
                           to pass --weights NAME=PATH.
    --weights NAME=PATH    local weights for NAME (implies pretrained for that
                           model): a torchvision state_dict .pth, a timm
                           checkpoint (.pth/.bin/.safetensors; "state_dict",
                           "model", "state_dict_ema" wrappers and a "module."
                           prefix are unwrapped). Classifier weights in the file
                           are ignored; every other tensor must match.

Which interpreter:

    Debian's /usr/bin/python3 (python3-torch, python3-torchvision) exports every
    model except beit. beit needs timm, which Debian does not package: use
    scripts/export_backbones.sh, which creates .venv (with
    --system-site-packages, so it keeps Debian's torch) and runs this script.

Compatibility note: exports made with torch >= 2 may contain operators (e.g.
aten::scaled_dot_product_attention in ViT/Swin attention) that libtorch 1.13
cannot load; the metadata's torchVersion lets the loader warn. For timm models
the fused attention path is switched off before export for that reason.

Traced modules (exportMethod "trace") record the control flow of eval mode:
in train mode they still behave like eval mode (dropout off, batch norm with
running statistics). After export the script runs the reloaded module in train
mode and compares it with the eager model in train mode (same RNG seed); it
says loudly when a trace does not reproduce train mode. With Debian's torch
1.13 and timm 1.0, beit is traced (timm's PatchEmbed does not script there);
beit_base_patch16_224 has no dropout, drop path or batch norm by default, so
its trace is exact in train mode too. The other models are scripted.

Examples:

    /usr/bin/python3 scripts/export_backbones.py resnet18
    /usr/bin/python3 scripts/export_backbones.py --models resnet152 convnext --out /tmp/bb
    scripts/export_backbones.sh all --pretrained \\
        --weights resnet152=/data/resnet152-f82ba261.pth --weights beit=/data/beit.safetensors
"""

import argparse
import copy
import hashlib
import json
import os
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torchvision
except ImportError as exc:  # pragma: no cover - depends on the interpreter
    sys.exit(
        "export_backbones: cannot import torch/torchvision (%s).\n"
        "Run this script with Debian's /usr/bin/python3 (apt-get install python3-torch "
        "python3-torchvision) or through scripts/export_backbones.sh." % exc
    )

FORMAT = "lumbar-stenosis-backbone"
REGISTRY_FORMAT = "lumbar-stenosis-registry"
FORMAT_VERSION = 1
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# name -> (source, architecture, featureDim, convolutional, torchvision weights enum class name)
MODELS = {
    "resnet18": ("torchvision", "resnet18", 512, True, "ResNet18_Weights"),
    "resnet152": ("torchvision", "resnet152", 2048, True, "ResNet152_Weights"),
    "efficientnet": ("torchvision", "efficientnet_v2_m", 1280, True, "EfficientNet_V2_M_Weights"),
    "convnext": ("torchvision", "convnext_base", 1024, True, "ConvNeXt_Base_Weights"),
    "vit": ("torchvision", "vit_b_16", 768, False, "ViT_B_16_Weights"),
    "swin": ("torchvision", "swin_b", 1024, False, "Swin_B_Weights"),
    "beit": ("timm", "beit_base_patch16_224", 768, False, None),
}
ALL_BIG = ["resnet152", "efficientnet", "convnext", "vit", "swin", "beit"]

# State-dict key prefixes of the classification Linear that gets replaced by Identity.
HEAD_PREFIXES = {
    "resnet18": ("fc.",),
    "resnet152": ("fc.",),
    "efficientnet": ("classifier.1.",),
    "convnext": ("classifier.2.",),
    "vit": ("heads.head.", "heads."),
    "swin": ("head.",),
    "beit": ("head.",),
}


class ExportError(Exception):
    """A failure that ends the export of one model with a clear message."""


def log(msg=""):
    print(msg, flush=True)


def banner(lines):
    width = max(len(line) for line in lines) + 4
    log("!" * width)
    for line in lines:
        log("! " + line.ljust(width - 4) + " !")
    log("!" * width)


# --------------------------------------------------------------------------- weights


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_weights_file(path):
    """Load a state_dict from a torchvision .pth or a timm checkpoint."""
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ExportError("%s is a .safetensors file but the safetensors package is missing" % path)
        state = load_file(path, device="cpu")
    else:
        state = torch.load(path, map_location="cpu")
    if isinstance(state, dict):
        for key in ("state_dict_ema", "model_ema", "state_dict", "model", "module"):
            inner = state.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                state = inner
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError("%s does not hold a state_dict (a mapping of names to tensors)" % path)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_backbone_state(name, model, state, what):
    """Load `state` into `model` (whose head is already Identity), ignoring head keys."""
    heads = HEAD_PREFIXES[name]
    state = {k: v for k, v in state.items() if not k.startswith(heads)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError("%s: the weights in %s do not fit %s:\n%s" % (name, what, MODELS[name][1], exc))


# --------------------------------------------------------------------------- builders


def tv_weights_enum(name):
    enum_name = MODELS[name][4]
    enum_cls = getattr(torchvision.models, enum_name, None)
    if enum_cls is None:
        raise ExportError("%s: torchvision %s has no %s" % (name, torchvision.__version__, enum_name))
    return enum_cls.DEFAULT


def tv_normalization(weights):
    try:
        t = weights.transforms()
        return [float(v) for v in t.mean], [float(v) for v in t.std]
    except Exception:  # noqa: BLE001 - fall back to the ImageNet statistics torchvision uses
        return list(IMAGENET_MEAN), list(IMAGENET_STD)


def replace_head(name, model):
    """Replace only the final classification Linear by Identity; return its in_features."""

    def swap(parent, attr):
        old = parent[attr] if isinstance(attr, int) else getattr(parent, attr)
        if not isinstance(old, nn.Linear):
            raise ExportError("%s: expected the classifier to be nn.Linear, found %r" % (name, old))
        if isinstance(attr, int):
            parent[attr] = nn.Identity()
        else:
            setattr(parent, attr, nn.Identity())
        return old.in_features

    if name in ("resnet18", "resnet152"):
        return swap(model, "fc")
    if name == "efficientnet":  # Sequential(Dropout, Linear)
        return swap(model.classifier, len(model.classifier) - 1)
    if name == "convnext":  # Sequential(LayerNorm2d, Flatten, Linear)
        return swap(model.classifier, len(model.classifier) - 1)
    if name == "vit":  # heads = Sequential(head=Linear)
        return swap(model.heads, "head")
    if name == "swin":
        return swap(model, "head")
    raise AssertionError(name)


def build_torchvision(name, args, weights_file):
    _, arch, _, _, _ = MODELS[name]
    default_weights = tv_weights_enum(name)
    mean, std = tv_normalization(default_weights)
    kwargs = {"weights": None}
    if name == "vit":
        if args.input_size % 16:
            raise ExportError("vit: --input-size must be a multiple of 16")
        kwargs["image_size"] = args.input_size
    model = getattr(torchvision.models, arch)(**kwargs)
    in_features = replace_head(name, model)

    description = None
    if weights_file:
        state = read_weights_file(weights_file)
        description = "file:%s sha256=%s" % (os.path.abspath(weights_file), sha256_of(weights_file))
        what = weights_file
    elif args.pretrained:
        try:
            state = dict(default_weights.get_state_dict(progress=True))
        except Exception as exc:  # noqa: BLE001 - any download failure ends here
            raise ExportError(
                "%s: could not download the pretrained torchvision weights %s (%s: %s).\n"
                "This machine may be offline. Download the file elsewhere (%s) and pass\n"
                "  --weights %s=PATH" % (name, default_weights, type(exc).__name__, exc, default_weights.url, name)
            )
        description = "torchvision:%s" % default_weights
        what = str(default_weights)
    else:
        state = None
    if state is not None:
        if name == "vit" and args.input_size != 224:
            from torchvision.models.vision_transformer import interpolate_embeddings

            state = dict(interpolate_embeddings(args.input_size, 16, state))
        load_backbone_state(name, model, state, what)
    return model, in_features, mean, std, description, None


def build_timm(name, args, weights_file):
    try:
        import timm
    except ImportError:
        raise ExportError(
            "%s needs timm, which Debian does not package. Run scripts/export_backbones.sh "
            "(it creates .venv with timm on top of Debian's torch) or use an interpreter that has timm." % name
        )
    # The fused attention path becomes aten::scaled_dot_product_attention on torch >= 2,
    # which libtorch 1.13 cannot load; the math path is numerically the same.
    layers = getattr(timm, "layers", None)
    if hasattr(torch.nn.functional, "scaled_dot_product_attention") and hasattr(layers, "set_fused_attn"):
        try:
            layers.set_fused_attn(False)
        except Exception:  # noqa: BLE001
            pass
    arch = MODELS[name][1]
    kwargs = {"scriptable": True}
    if args.input_size != 224:
        kwargs["img_size"] = args.input_size
    use_download = args.pretrained and not weights_file
    try:
        model = timm.create_model(arch, pretrained=use_download, **kwargs)
    except Exception as exc:  # noqa: BLE001
        if use_download:
            raise ExportError(
                "%s: could not download the pretrained timm weights for %s (%s: %s).\n"
                "This machine may be offline. Download the checkpoint elsewhere and pass\n"
                "  --weights %s=PATH" % (name, arch, type(exc).__name__, exc, name)
            )
        raise
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    mean = [float(v) for v in cfg.get("mean", IMAGENET_MEAN)]
    std = [float(v) for v in cfg.get("std", IMAGENET_STD)]
    description = None
    if use_download:
        tag = cfg.get("hf_hub_id") or cfg.get("url") or arch
        description = "timm:%s%s" % (tag, (" (" + cfg["tag"] + ")") if cfg.get("tag") else "")
    if weights_file:
        state = read_weights_file(weights_file)
        try:
            from timm.models import beit as beit_module

            if hasattr(beit_module, "checkpoint_filter_fn"):
                state = dict(beit_module.checkpoint_filter_fn(state, model))
        except ImportError:
            pass
        # Load with the classifier still present so that a full checkpoint fits exactly.
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError:
            heads = HEAD_PREFIXES[name]
            stripped = {k: v for k, v in state.items() if not k.startswith(heads)}
            missing, unexpected = model.load_state_dict(stripped, strict=False)
            bad = [k for k in missing if not k.startswith(heads)] + list(unexpected)
            if bad:
                raise ExportError("%s: the weights in %s do not fit %s: %s" % (name, weights_file, arch, bad[:20]))
        description = "file:%s sha256=%s" % (os.path.abspath(weights_file), sha256_of(weights_file))
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise ExportError("%s: expected model.head to be nn.Linear, found %r" % (name, head))
    in_features = head.in_features
    model.reset_classifier(0)
    if not isinstance(model.head, nn.Identity):
        model.head = nn.Identity()
    return model, in_features, mean, std, description, timm.__version__


# --------------------------------------------------------------------------- export


def atomic_write_json(path, obj):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def to_script_module(name, model, example, method):
    """Return (module, exportMethod)."""
    if method in ("auto", "script"):
        try:
            return torch.jit.script(model), "script"
        except Exception as exc:  # noqa: BLE001 - TorchScript raises many kinds of errors
            if method == "script":
                raise ExportError("%s: torch.jit.script failed (--method script):\n%s" % (name, exc))
            first = str(exc).strip().splitlines()
            reason = first[0] if first else type(exc).__name__
            log("  torch.jit.script failed (%s); falling back to torch.jit.trace" % reason)
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    return traced, "trace"


def max_abs_diff(a, b):
    return float((a.double() - b.double()).abs().max().item()) if a.numel() else 0.0


def export_one(name, args, weights_file):
    source, arch, feature_dim, convolutional, _ = MODELS[name]
    started = time.time()
    torch.manual_seed(args.seed)
    if source == "torchvision":
        model, in_features, mean, std, description, timm_version = build_torchvision(name, args, weights_file)
    else:
        model, in_features, mean, std, description, timm_version = build_timm(name, args, weights_file)
    if in_features != feature_dim:
        raise ExportError("%s: classifier input is %d features, expected %d" % (name, in_features, feature_dim))
    pretrained = description is not None
    if not pretrained:
        banner([
            "RANDOM WEIGHTS: %s was exported without pretrained ImageNet weights" % name,
            "(seed %d). Use --pretrained / --weights %s=PATH for real features." % (args.seed, name),
        ])
    model.eval()
    eager_names = [n for n, _ in model.named_parameters()]
    parameter_tensors = len(list(model.parameters()))

    size = args.input_size
    gen = torch.Generator().manual_seed(args.seed + 1)
    example = torch.randn(1, 3, size, size, generator=gen)
    check_x = torch.randn(args.check_batch, 3, size, size, generator=gen)

    scripted, method = to_script_module(name, model, example, args.method)
    if method == "trace":
        log("  TRACED: %s was exported with torch.jit.trace, which records eval-mode control flow;" % name)
        log("  the train-mode check below tells whether that matters for this model.")

    os.makedirs(args.out, exist_ok=True)
    pt_path = os.path.join(args.out, name + ".pt")
    json_path = os.path.join(args.out, name + ".json")
    tmp_pt = "%s.tmp-%d" % (pt_path, os.getpid())
    try:
        torch.jit.save(scripted, tmp_pt)
        del scripted
        loaded = torch.jit.load(tmp_pt, map_location="cpu")
        loaded.eval()

        # Eval-mode equivalence with the eager model.
        with torch.no_grad():
            ref = model(check_x)
            out = loaded(check_x)
        expected_shape = (args.check_batch, feature_dim)
        if tuple(ref.shape) != expected_shape:
            raise ExportError("%s: eager output shape %s, expected %s" % (name, tuple(ref.shape), expected_shape))
        if tuple(out.shape) != expected_shape or out.dtype != torch.float32:
            raise ExportError(
                "%s: exported output %s %s, expected %s float32" % (name, tuple(out.shape), out.dtype, expected_shape)
            )
        diff = max_abs_diff(out, ref)
        tolerance = 1e-4 * (1.0 + float(ref.abs().max().item()))
        if not (diff <= tolerance):  # also catches NaN
            raise ExportError(
                "%s: exported output differs from eager: max abs diff %.3g > tolerance %.3g" % (name, diff, tolerance)
            )

        # Parameter names in registration order, as libtorch will see them.
        loaded_names = [n for n, _ in loaded.named_parameters()]
        if loaded_names != eager_names:
            first = next(
                (i for i, (a, b) in enumerate(zip(loaded_names, eager_names)) if a != b),
                min(len(loaded_names), len(eager_names)),
            )
            raise ExportError(
                "%s: exported parameter names differ from the eager model's (%d vs %d names, first difference at %d)"
                % (name, len(loaded_names), len(eager_names), first)
            )
        if len(loaded_names) != parameter_tensors:
            raise ExportError(
                "%s: %d parameter names but %d parameter tensors" % (name, len(loaded_names), parameter_tensors)
            )

        # Train mode must run (the C++ side trains with the backbone in train mode).
        eager_train = copy.deepcopy(model).train()
        loaded.train()
        with torch.no_grad():
            torch.manual_seed(args.seed + 2)
            out_train = loaded(check_x)
            torch.manual_seed(args.seed + 2)
            ref_train = eager_train(check_x)
        del eager_train
        loaded.eval()
        if tuple(out_train.shape) != expected_shape or not bool(torch.isfinite(out_train).all()):
            raise ExportError("%s: train-mode output is %s or not finite" % (name, tuple(out_train.shape)))
        train_diff = max_abs_diff(out_train, ref_train)
        train_tol = 1e-4 * (1.0 + float(ref_train.abs().max().item()))
        if train_diff <= train_tol:
            train_note = "matches eager train mode (max abs diff %.3g)" % train_diff
            if method == "trace":
                train_note += ": this model has no active dropout/drop path/batch norm, so the trace is faithful"
        elif method == "trace":
            train_note = "differs from eager train mode (max abs diff %.3g)" % train_diff
            banner([
                "TRACED: %s behaves like eval mode even in train mode (trace froze the" % name,
                "control flow: no dropout / stochastic depth, batch norm uses running",
                "statistics). Train-mode max abs diff vs eager: %.3g." % train_diff,
            ])
        else:
            train_note = "differs from eager train mode (max abs diff %.3g; RNG draw order may differ)" % train_diff
        del loaded

        metadata = {
            "format": FORMAT,
            "formatVersion": FORMAT_VERSION,
            "name": name,
            "architecture": arch,
            "source": source,
            "featureDim": feature_dim,
            "inputSize": size,
            "mean": mean,
            "std": std,
            "convolutional": convolutional,
            "parameterTensors": parameter_tensors,
            "parameterNames": loaded_names,
            "pretrained": pretrained,
            "weights": description,
            "torchVersion": torch.__version__,
            "torchvisionVersion": torchvision.__version__,
            "timmVersion": timm_version,
            "exportMethod": method,
            "seed": args.seed,
            "checkMaxAbsDiff": diff,
        }
        os.replace(tmp_pt, pt_path)
        atomic_write_json(json_path, metadata)
    finally:
        if os.path.exists(tmp_pt):
            os.remove(tmp_pt)

    elapsed = time.time() - started
    result = {
        "name": name,
        "featureDim": feature_dim,
        "parameterTensors": parameter_tensors,
        "exportMethod": method,
        "bytes": os.path.getsize(pt_path),
        "seconds": elapsed,
        "checkMaxAbsDiff": diff,
        "pretrained": pretrained,
    }
    log(
        "  %s -> %s (%s, %d parameter tensors, %.1f MB, %.1f s)"
        % (name, pt_path, method, parameter_tensors, result["bytes"] / 1e6, elapsed)
    )
    log("  eval check: max abs diff %.3g (tolerance %.3g); train mode runs, %s" % (diff, tolerance, train_note))
    return result


def update_registry(out_dir, names):
    path = os.path.join(out_dir, "registry.json")
    registry = {"format": REGISTRY_FORMAT, "formatVersion": FORMAT_VERSION, "models": {}}
    if os.path.exists(path):
        try:
            with open(path) as f:
                existing = json.load(f)
        except ValueError as exc:
            raise ExportError("%s is not valid JSON (%s); fix or remove it" % (path, exc))
        valid = isinstance(existing, dict) and existing.get("format") == REGISTRY_FORMAT
        if not valid or not isinstance(existing.get("models"), dict):
            raise ExportError("%s is not a %s file; fix or remove it" % (path, REGISTRY_FORMAT))
        registry["models"].update(existing["models"])
    for name in names:
        registry["models"][name] = {"file": name + ".pt", "metadata": name + ".json"}
    registry["models"] = dict(sorted(registry["models"].items()))
    atomic_write_json(path, registry)
    return path


# --------------------------------------------------------------------------- CLI


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="export_backbones.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    choices = sorted(MODELS) + ["all"]
    parser.add_argument("names", nargs="*", metavar="NAME", help="models to export: %s" % " ".join(choices))
    parser.add_argument(
        "--models", nargs="+", default=[], metavar="NAME", help="models to export (same as the positional names)"
    )
    parser.add_argument("--out", default="models", help="output directory (default: models)")
    parser.add_argument("--input-size", type=int, default=224, help="square input size S of [B,3,S,S] (default: 224)")
    parser.add_argument(
        "--pretrained", action="store_true", help="use ImageNet weights (--weights file, else the library's download)"
    )
    parser.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="local weights file for model NAME (repeatable; implies pretrained for NAME)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for random weights and check inputs (default: 0)")
    parser.add_argument("--check-batch", type=int, default=2, help="batch size of the export check (default: 2)")
    parser.add_argument(
        "--method",
        choices=["auto", "script", "trace"],
        default="auto",
        help="auto: script where it can, trace where it must (default)",
    )
    args = parser.parse_args(argv)

    requested = []
    for n in list(args.names) + list(args.models):
        if n not in choices:
            parser.error("unknown model %r (choose from: %s)" % (n, " ".join(choices)))
        for m in (ALL_BIG if n == "all" else [n]):
            if m not in requested:
                requested.append(m)
    if not requested:
        parser.error("no models given (choose from: %s)" % " ".join(choices))
    args.requested = requested

    weights = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep or not path:
            parser.error("--weights expects NAME=PATH, got %r" % item)
        if name not in MODELS:
            parser.error("--weights: unknown model %r" % name)
        if name not in requested:
            parser.error("--weights given for %s, which is not being exported" % name)
        if not os.path.isfile(path):
            parser.error("--weights %s: no such file: %s" % (name, path))
        weights[name] = path
    args.weight_files = weights
    if args.input_size < 32:
        parser.error("--input-size must be at least 32")
    if args.check_batch < 1:
        parser.error("--check-batch must be at least 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    size = "%dx%d" % (args.input_size, args.input_size)
    versions = (torch.__version__, torchvision.__version__)
    log("export_backbones: torch %s, torchvision %s; models: %s; out: %s; input %s"
        % (versions + (" ".join(args.requested), args.out, size)))
    results = []
    failures = []
    for name in args.requested:
        log("== %s" % name)
        try:
            results.append(export_one(name, args, args.weight_files.get(name)))
            update_registry(args.out, [name])
        except ExportError as exc:
            log("EXPORT FAILED: %s" % exc)
            failures.append(name)

    if results:
        log("")
        columns = ("name", "featureDim", "params", "method", "MB", "seconds", "maxdiff", "weights")
        log("%-13s %10s %8s %7s %10s %9s %10s  %s" % columns)
        for r in results:
            log("%-13s %10d %8d %7s %10.1f %9.1f %10.2g  %s" % (
                r["name"], r["featureDim"], r["parameterTensors"], r["exportMethod"], r["bytes"] / 1e6,
                r["seconds"], r["checkMaxAbsDiff"], "pretrained" if r["pretrained"] else "RANDOM"))
        random_names = [r["name"] for r in results if not r["pretrained"]]
        if random_names:
            banner(["RANDOM WEIGHTS (not pretrained): %s" % " ".join(random_names)])
    if failures:
        log("export_backbones: FAILED: %s" % " ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
