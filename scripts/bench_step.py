#!/usr/bin/env python3
"""Python PyTorch side of the training-step benchmark (bench/run.js), written as a PyTorch user would write it.

The model is the addon's: a TorchScript backbone (torch.jit.load) with its last N parameter tensors unfrozen, a
level embedding, the head of stenosis_model.py, class-weighted cross-entropy and AdamW, trained in a plain loop.
One run prints one JSON object:

    /usr/bin/python3 scripts/bench_step.py --backbone models/resnet18.pt --size 128 --batch 8 --threads 2

With --serve the model is built and warmed up once, then JSON commands are read from stdin, one a line, and each
is answered with one JSON line on stdout. This lets the Node harness interleave Python's repeats with the addon's
without paying for start-up and warm-up again each time:

    {"cmd": "steps", "steps": 5}     time 5 train steps
    {"cmd": "flops"}                 count the FLOPs of one train step (see count_step_flops)
    {"cmd": "mm", "size": 2048, "repeats": 3}   time a fp32 torch.mm of two size x size matrices
    {"cmd": "quit"}
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch
from torch import nn

# The head is the one the addon builds (same layers, same order), shared with the parity reference.
from stenosis_model import build_head


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", required=True, help="TorchScript backbone file (scripts/export_backbones.py)")
    parser.add_argument("--size", type=int, default=224, help="input side S of [B, 3, S, S] (default 224)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--unfreeze", type=int, default=32, help="last N parameter tensors of the backbone trained")
    parser.add_argument("--embedding", type=int, default=256, help="level embedding dimension")
    parser.add_argument("--hidden", type=int, nargs=2, default=[512, 256])
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=0.02)
    parser.add_argument("--class-weights", type=float, nargs=3, default=None, metavar="W")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (without --serve)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: the backbone under torch.autocast('cpu', torch.bfloat16); head and loss in fp32")
    parser.add_argument("--serve", action="store_true", help="answer JSON commands from stdin")
    return parser.parse_args(argv)


def max_rss_mb():
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Bench:
    def __init__(self, args):
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.args = args
        self.backbone = torch.jit.load(args.backbone, map_location="cpu")
        # "Last N layers" as the reference means it: the last N tensors of the parameter list.
        params = list(self.backbone.parameters())
        for p in params:
            p.requires_grad_(False)
        trainable = params[-args.unfreeze:] if args.unfreeze > 0 else []
        for p in trainable:
            p.requires_grad_(True)
        with torch.no_grad():
            feature_dim = self.backbone(torch.zeros(1, 3, args.size, args.size)).shape[1]
        self.embedding = nn.Embedding(5, args.embedding)
        self.head = build_head(feature_dim + args.embedding, args.hidden[0], args.hidden[1], args.dropout)
        self.backbone.train()
        self.embedding.train()
        self.head.train()
        weights = torch.tensor(args.class_weights, dtype=torch.float32) if args.class_weights else None
        self.criterion = nn.CrossEntropyLoss(weight=weights)
        self.optimizer = torch.optim.AdamW(
            trainable + list(self.embedding.parameters()) + list(self.head.parameters()),
            lr=args.lr, weight_decay=args.weight_decay)
        self.images = torch.randn(args.batch, 3, args.size, args.size)
        # The same level and label pattern as the addon's batch in bench/run.js.
        self.levels = torch.tensor([i % 5 for i in range(args.batch)], dtype=torch.long)
        self.labels = torch.tensor([i % 3 for i in range(args.batch)], dtype=torch.long)
        self.info = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "precision": args.precision,
            "featureDim": int(feature_dim),
            "unfrozenTensors": len(trainable),
            "trainableParameters": sum(p.numel() for group in self.optimizer.param_groups for p in group["params"]),
        }

    def forward_loss(self):
        # Mixed precision as the PyTorch documentation shows it for the CPU (torch.autocast around the forward
        # pass, backward and optimizer step outside), around the backbone only: in torch 1.13 the head's
        # LayerNorm fails under CPU autocast ("expected scalar type BFloat16 but found Float").
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.args.precision == "bf16"):
            features = self.backbone(self.images)
        logits = self.head(torch.cat([features.float(), self.embedding(self.levels)], dim=1))
        return self.criterion(logits, self.labels)

    def train_step(self):
        self.optimizer.zero_grad()
        loss = self.forward_loss()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def steps(self, count):
        seconds = []
        loss = float("nan")
        for _ in range(count):
            start = time.perf_counter()
            loss = self.train_step()
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        return {
            "stepSeconds": seconds,
            "medianStepSeconds": median,
            "imagesPerSecond": self.args.batch / median,
            "loss": loss,
            "maxRssMb": max_rss_mb(),
        }

    def flops(self):
        return count_step_flops(self)


def conv_macs(node):
    """Multiply-accumulates of the forward convolution recorded by a ConvolutionBackward0 autograd node."""
    input_shape = node._saved_input.shape
    weight_shape = node._saved_weight.shape
    stride, padding, dilation = node._saved_stride, node._saved_padding, node._saved_dilation
    out_spatial = 1
    for i, size in enumerate(input_shape[2:]):
        kernel = weight_shape[2 + i]
        out_spatial *= (size + 2 * padding[i] - dilation[i] * (kernel - 1) - 1) // stride[i] + 1
    per_output = 1
    for d in weight_shape[1:]:
        per_output *= d  # Cin / groups * kh * kw
    return input_shape[0] * weight_shape[0] * out_spatial * per_output


def count_step_flops(bench):
    """FLOPs of one train step, counted two ways that together cover the step.

    torch.profiler(with_flops=True) counts the operators it has formulas for (conv2d, mm, addmm, bmm, mul, add)
    wherever they run, forward or backward: this covers the forward pass, the Linear layers' backward matrix
    products and the optimizer's elementwise work. It has no formula for convolution_backward, so convolution
    gradients are added from the step's autograd graph: each ConvolutionBackward0 node costs 2 x the forward
    MACs per gradient it computes, the input's when its input needs one, the weight's when the weight is
    trained (read from the node's next_functions, so the first unfrozen layers, fed by frozen ones, count only
    their weight gradient).
    """
    from torch.profiler import ProfilerActivity, profile

    bench.optimizer.zero_grad()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        loss = bench.forward_loss()
        conv_backward = 0
        seen = set()
        stack = [loss.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            if type(node).__name__ == "ConvolutionBackward0":
                gradients = sum(1 for fn, _ in node.next_functions[:2] if fn is not None)
                conv_backward += 2 * conv_macs(node) * gradients
            stack.extend(fn for fn, _ in node.next_functions)
        loss.backward()
        bench.optimizer.step()
    by_operator = {}
    for event in prof.events():
        if event.flops:
            by_operator[event.name] = by_operator.get(event.name, 0) + int(event.flops)
    profiled = sum(by_operator.values())
    return {
        "flops": profiled + conv_backward,
        "profilerFlops": by_operator,
        "convolutionBackwardFlops": conv_backward,
        "method": "torch.profiler with_flops over one step + 2 x MACs per convolution gradient from the autograd graph",
    }


def time_mm(size, repeats):
    """Median seconds and FLOP/s of a size x size fp32 matrix product (2 size^3 FLOPs), after one untimed run."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {"size": size, "seconds": seconds, "medianSeconds": median, "flopsPerSecond": 2 * size**3 / median}


def serve(bench):
    print(json.dumps({"ready": True, **bench.info}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        kind = command.get("cmd")
        try:
            if kind == "steps":
                reply = bench.steps(int(command["steps"]))
            elif kind == "flops":
                reply = bench.flops()
            elif kind == "mm":
                reply = time_mm(int(command.get("size", 2048)), int(command.get("repeats", 3)))
            elif kind == "quit":
                return
            else:
                reply = {"error": f"unknown command {kind!r}"}
        except Exception as error:  # reported to the harness, which stops with it
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


def main(argv=None):
    args = parse_args(argv)
    bench = Bench(args)
    for _ in range(args.warmup):
        bench.train_step()
    if args.serve:
        serve(bench)
        return
    result = {"tool": "bench_step.py", "batch": args.batch, "size": args.size, **bench.info}
    result.update(bench.steps(args.steps))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
