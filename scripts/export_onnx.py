#!/usr/bin/env python3
"""Export a TorchScript backbone (scripts/export_backbones.py) to ONNX with the same weights.

The benchmark (bench/run.js) times onnxruntime-node against the addon on one set of weights: this script
reads the TorchScript file the addon loads and writes its eval-mode graph as ONNX, so both runtimes compute
the same function. Batch, height and width stay dynamic, so one file serves every input size.

    /usr/bin/python3 scripts/export_onnx.py --backbone models/resnet18.pt --out models/resnet18.onnx

torch.onnx.export in torch 1.13 writes the file itself: the `onnx` Python package is not needed. The output
is written to a temporary name and renamed, so a reader never sees half a file.
"""
import argparse
import json
import os
import sys

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", required=True, help="TorchScript backbone file")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--size", type=int, default=None,
                        help="side of the example input used to trace the graph (default: the metadata's inputSize)")
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    return parser.parse_args(argv)


def example_size(args):
    if args.size:
        return args.size
    metadata = os.path.splitext(args.backbone)[0] + ".json"
    try:
        with open(metadata, encoding="utf-8") as f:
            return int(json.load(f)["inputSize"])
    except (OSError, KeyError, ValueError):
        return 224


def main(argv=None):
    args = parse_args(argv)
    model = torch.jit.load(args.backbone, map_location="cpu")
    # Inference graph: batch norm with its running statistics, no dropout.
    model.eval()
    size = example_size(args)
    example = torch.zeros(1, 3, size, size)
    temp = args.out + ".tmp-%d" % os.getpid()
    try:
        torch.onnx.export(
            model,
            example,
            temp,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch"}},
            opset_version=args.opset,
            do_constant_folding=True,
        )
        os.replace(temp, args.out)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    print(json.dumps({"backbone": args.backbone, "onnx": args.out, "opset": args.opset, "torch": torch.__version__}))


if __name__ == "__main__":
    sys.exit(main())
