#!/usr/bin/env python3
"""The reference's per-sample Python data pipeline, for the data-pipeline benchmark (bench/run.js).

A torch Dataset that, for every sample of every epoch, reads the DICOM file with pydicom, min-max scales it,
turns it into an 8-bit PIL image in three channels, resizes it, applies a random horizontal flip and rotation,
converts it to a tensor and normalizes it (torchvision.transforms), batched by a DataLoader: the way the reference
implementation prepares its images. Nothing is cached between epochs, as in the reference.

    /usr/bin/python3 scripts/bench_pipeline.py --samples samples.json --size 128 --batch 8 --threads 2

samples.json is a list of {"imagePath": ..., "level": 0..4, "label": 0..2}. One run prints one JSON object with
the epoch's samples per second. With --serve the pipeline is built once and JSON commands are read from stdin,
one a line, each answered with one JSON line: {"cmd": "epoch"} times one epoch, {"cmd": "quit"} ends.
"""
import argparse
import json
import resource
import sys
import time

import numpy as np
import pydicom
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DicomDataset(Dataset):
    def __init__(self, samples, size, flip, rotation, mean, std):
        self.samples = samples
        self.transform = transforms.Compose([
            transforms.Resize((size, size)),
            transforms.RandomHorizontalFlip(flip),
            transforms.RandomRotation(rotation),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ])

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        sample = self.samples[index]
        pixels = pydicom.dcmread(sample["imagePath"]).pixel_array.astype(np.float32)
        low, high = pixels.min(), pixels.max()
        pixels = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
        image = Image.fromarray((pixels * 255).astype(np.uint8)).convert("RGB")
        return self.transform(image), sample["level"], sample["label"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", required=True, help="JSON list of {imagePath, level, label}")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (the reference: 0)")
    parser.add_argument("--flip", type=float, default=0.5)
    parser.add_argument("--rotation", type=float, default=10)
    parser.add_argument("--mean", type=float, nargs=3, default=IMAGENET_MEAN)
    parser.add_argument("--std", type=float, nargs=3, default=IMAGENET_STD)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve", action="store_true", help="answer JSON commands from stdin")
    return parser.parse_args(argv)


def run_epoch(loader):
    start = time.perf_counter()
    count = 0
    for images, _levels, _labels in loader:
        count += images.shape[0]
    seconds = time.perf_counter() - start
    return {
        "samples": count,
        "seconds": seconds,
        "samplesPerSecond": count / seconds,
        "maxRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(args.samples) as f:
        samples = json.load(f)
    dataset = DicomDataset(samples, args.size, args.flip, args.rotation, tuple(args.mean), tuple(args.std))
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers)
    if not args.serve:
        print(json.dumps({"tool": "bench_pipeline.py", "size": args.size, **run_epoch(loader)}))
        return
    print(json.dumps({"ready": True, "torch": torch.__version__, "samples": len(samples)}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        kind = json.loads(line).get("cmd")
        if kind == "quit":
            return
        try:
            reply = run_epoch(loader) if kind == "epoch" else {"error": f"unknown command {kind!r}"}
        except Exception as error:  # reported to the harness, which stops with it
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
