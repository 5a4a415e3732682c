#!/usr/bin/env python3
"""Exports a trained stenosis grader as ONE TorchScript file (backbone + level embedding + head + softmax).

    /usr/bin/python3 scripts/export_trained.py --checkpoint outputs/trained_models/resnet18_best.ckpt \
        --out resnet18_stenosis.pt [--backbone models/resnet18.pt]

The backbone defaults to the checkpoint's user.backbonePath (the train command records it). The file is written
to a temporary name beside OUT, reloaded and checked against the eager model on a random batch, and only then
renamed into place; NAME.json beside it describes the inputs, the outputs and the preprocessing. Python then needs
nothing from this package:

    model = torch.jit.load("resnet18_stenosis.pt")
    probabilities = model(images, levels)   # [B, 3, S, S] float32, [B] int64 -> [B, 3]

Expected failures (missing or mismatched files) print one "error: ..." line on stderr and exit with status 1.
"""
import argparse
import json
import os
import sys

# Largest difference allowed between the eager and the reloaded scripted model's probabilities; both run the same
# libtorch kernels, so anything near this bound means the scripted graph computes something else.
CHECK_TOLERANCE = 1e-5
MODEL_FORMAT = "lumbar-stenosis-model"


class ExportError(Exception):
    """An expected failure; its message names the file and is printed as one line."""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by Trainer.save or the train command")
    parser.add_argument("--out", required=True, help="TorchScript file to write (NAME.json is written beside it)")
    parser.add_argument("--backbone", help="TorchScript backbone file (default: the checkpoint's user.backbonePath)")
    parser.add_argument("--check-batch", type=int, default=5, help="random samples for the check (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the check batch (default 0)")
    return parser.parse_args(argv)


def description_path(out):
    """NAME.json beside NAME.pt, the same convention as the backbone exports."""
    root, ext = os.path.splitext(out)
    return (root if ext == ".pt" else out) + ".json"


def resolve_backbone(args, metadata, checkpoint_path):
    """The backbone file: --backbone, else the checkpoint's user.backbonePath; it must exist."""
    if args.backbone:
        path, origin = args.backbone, "--backbone"
    else:
        path = (metadata.get("user") or {}).get("backbonePath")
        origin = f"user.backbonePath of {checkpoint_path}"
        if not path:
            raise ExportError(f"{checkpoint_path} records no backbone path (user.backbonePath); pass --backbone "
                              f"with the TorchScript backbone it was trained on")
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ExportError(f"backbone not found: {path} (from {origin}); pass --backbone with the TorchScript "
                          f"backbone the checkpoint was trained on")
    return path


def preprocessing_notes(pipeline, mean, std, input_size):
    """Human-readable preprocessing steps, from the training pipeline when the checkpoint recorded one."""
    notes = []
    crop = (pipeline or {}).get("crop")
    if crop:
        notes.append(f"crop a {crop['size']} {crop['unit']} square centred on the level's x/y "
                     f"({'using PixelSpacing' if crop['unit'] == 'mm' else 'in pixels'}), padded with the "
                     f"image's minimum where it leaves the image")
    elif pipeline is not None:
        notes.append("no crop: the whole slice")
    scaling = (pipeline or {}).get("scaling")
    if scaling == "percentile":
        notes.append("scale the (cropped) region's intensities to [0, 1] between its 0.5 and 99.5 percentiles, "
                     "clamped")
    elif scaling == "minmax":
        notes.append("scale the (cropped) region's intensities to [0, 1] by its min and max")
    notes.append(f"resize to {input_size} x {input_size}: bilinear, antialiased, align_corners=False, "
                 f"clamped to [0, 1]")
    notes.append("repeat the grey channel to 3 channels")
    notes.append(f"normalize per channel: (x - mean) / std with mean {list(mean)} and std {list(std)}")
    notes.append("no flip or rotation: those are training augmentation only")
    if pipeline is None:
        notes.append("the checkpoint recorded no pipeline (not written by the train command): crop and intensity "
                     "scaling are whatever the caller used in training")
    return notes


def inference_pipeline(pipeline):
    """The training pipeline without its augmentation: what an input to the exported model goes through."""
    if pipeline is None:
        return None
    return {**pipeline, "flipProbability": 0, "rotationDegrees": 0}


def training_augmentation(pipeline):
    """The random flip and rotation used in training only, kept for the record."""
    if pipeline is None:
        return None
    return {key: pipeline.get(key) for key in ("flipProbability", "rotationDegrees")}


def export(args):
    # Imported here so that a Python without torch fails with one clear line rather than a traceback.
    try:
        import torch
    except ImportError as error:
        raise ExportError(f"{sys.executable} cannot import torch ({error}); use Debian's /usr/bin/python3 "
                          f"(python3-torch) or set STENOSIS_PYTHON") from error
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from stenosis_model import CheckpointError, load_from_checkpoint, read_checkpoint

    checkpoint_path = os.path.abspath(args.checkpoint)
    out = os.path.abspath(args.out)
    json_path = description_path(out)
    if os.path.isdir(out):
        raise ExportError(f"--out {out} is a folder; give the TorchScript file to write, e.g. "
                          f"{os.path.join(out, 'model.pt')}")
    if not out.endswith(".pt"):
        raise ExportError(f"--out {out}: the export is a TorchScript file, so its name must end in .pt")
    if out == json_path or out == checkpoint_path:
        raise ExportError(f"--out {out} would overwrite the checkpoint or the description; choose a .pt path")
    try:
        metadata, _ = read_checkpoint(checkpoint_path)
        backbone_path = resolve_backbone(args, metadata, checkpoint_path)
        model = load_from_checkpoint(checkpoint_path, backbone_path)
    except CheckpointError as error:
        raise ExportError(str(error)) from error
    if out == backbone_path:
        raise ExportError(f"--out {out} is the backbone file itself; choose another path")

    user = metadata.get("user") or {}
    pipeline = user.get("pipeline")
    backbone_meta = metadata["backbone"]
    # The size the model was trained at: the pipeline's when recorded, else the backbone export's.
    input_size = int((pipeline or {}).get("size") or backbone_meta["inputSize"])
    mean = (pipeline or {}).get("mean") or backbone_meta["mean"]
    std = (pipeline or {}).get("std") or backbone_meta["std"]

    try:
        scripted = torch.jit.script(model)
    except Exception as error:  # TorchScript compilation errors come as several exception types
        raise ExportError(f"torch.jit.script failed for {checkpoint_path} with backbone {backbone_path}: "
                          f"{str(error).strip().splitlines()[0]}") from error

    temporary = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.tmp-{os.getpid()}")
    try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            torch.jit.save(scripted, temporary)
        except RuntimeError as error:  # torch's zip writer reports unwritable paths as RuntimeError
            raise OSError(str(error).strip().splitlines()[0]) from error
        # Check the file as written, before it takes the final name: a bad export never replaces a good one.
        reloaded = torch.jit.load(temporary, map_location="cpu")
        generator = torch.Generator().manual_seed(args.seed)
        images = torch.randn(args.check_batch, 3, input_size, input_size, generator=generator)
        levels = torch.arange(args.check_batch, dtype=torch.long) % len(metadata["levels"])
        with torch.no_grad():
            expected = model(images, levels)
            actual = reloaded(images, levels)
        difference = float((expected - actual).abs().max())
        if not difference <= CHECK_TOLERANCE:
            raise ExportError(f"the exported {out} gives probabilities {difference:.3g} away from the eager model "
                              f"(allowed {CHECK_TOLERANCE}); nothing written")
        os.replace(temporary, out)
    except OSError as error:
        raise ExportError(f"cannot write {out}: {error}") from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)

    levels_list = metadata["levels"]
    classifier = metadata["classifier"]
    description = {
        "format": MODEL_FORMAT,
        "version": 1,
        "file": os.path.basename(out),
        "classes": metadata["classes"],
        "levels": levels_list,
        "levelIndex": {name: index for index, name in enumerate(levels_list)},
        "inputs": {
            "images": f"float32 [B, 3, {input_size}, {input_size}], preprocessed as below",
            "levels": "int64 [B]: index into levels (" +
                      ", ".join(f"{index} = {name}" for index, name in enumerate(levels_list)) + ")",
        },
        "output": "float32 [B, 3]: softmax probabilities in the order of classes",
        "inputSize": input_size,
        "mean": list(mean),
        "std": list(std),
        "preprocessing": {
            "notes": preprocessing_notes(pipeline, mean, std, input_size),
            # The inference pipeline (no augmentation); the training-only flip and rotation are listed apart.
            "pipeline": inference_pipeline(pipeline),
            "trainingAugmentation": training_augmentation(pipeline),
        },
        "backbone": {key: backbone_meta.get(key) for key in
                     ("name", "architecture", "source", "featureDim", "pretrained", "weights", "exportMethod")},
        "classifier": classifier,
        "torchVersion": torch.__version__,
        "source": {
            "checkpoint": checkpoint_path,
            "backbone": backbone_path,
            "savedAt": metadata.get("savedAt"),
            "name": user.get("name"),
            "epoch": user.get("epoch"),
        },
        "check": {"batch": args.check_batch, "seed": args.seed, "maxAbsDiff": difference},
    }
    if classifier.get("precision", "fp32") != "fp32":
        # The addon autocasts the backbone under bf16/fp16; the export computes in fp32 throughout.
        description["precisionNote"] = (f"trained with {classifier['precision']} autocast on the backbone; this "
                                        f"file runs in float32, so probabilities may differ slightly from training")
    json_temporary = os.path.join(os.path.dirname(json_path), f".{os.path.basename(json_path)}.tmp-{os.getpid()}")
    try:
        with open(json_temporary, "w") as f:
            json.dump(description, f, indent=2)
            f.write("\n")
        os.replace(json_temporary, json_path)
    except OSError as error:
        if os.path.exists(json_temporary):
            os.remove(json_temporary)
        raise ExportError(f"cannot write {json_path}: {error}") from error

    print(f"exported {out} ({backbone_meta.get('architecture')}, input {input_size} px, "
          f"check max |eager - scripted| = {difference:.3g})")
    print(f"described in {json_path}")
    if backbone_meta.get("pretrained") is False:
        print("note: the backbone export had random (not pretrained) weights before training")
    if "precisionNote" in description:
        print(f"note: {description['precisionNote']}")
    print("use it from Python (needs only torch):")
    print("    import torch")
    print(f"    model = torch.jit.load({out!r})  # saved in eval mode")
    print(f"    images = torch.zeros(2, 3, {input_size}, {input_size})  # preprocessed and normalized, see the JSON")
    print(f"    levels = torch.tensor([3, 4])  # {', '.join(f'{i} = {name}' for i, name in enumerate(levels_list))}")
    print("    with torch.no_grad():")
    print(f"        probabilities = model(images, levels)  # [2, 3]: {', '.join(metadata['classes'])}")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.check_batch < 1:
        print("error: --check-batch must be at least 1", file=sys.stderr)
        return 2
    try:
        export(args)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
