#!/usr/bin/env python3
"""Independent PyTorch reference for the parity tests.

Rebuilds the stenosis classifier in plain PyTorch (torch.jit.load backbone + nn.Embedding + nn.Sequential
head), loads the weights from a checkpoint written by the addon, and runs on the same inputs: backbone features,
logits, class-weighted cross-entropy, gradients, and one AdamW step. Writes every result to OUT.json (shapes and
offsets) and OUT.bin (float32 little endian) so the Node test can compare them with the addon's.

    /usr/bin/python3 scripts/reference_step.py --backbone resnet18.pt --checkpoint init.ckpt \
        --inputs inputs.json --out reference --unfreeze-last 8
"""
import argparse
import json

import numpy as np
import torch
from torch import nn

# The head's definition is shared with the model export (scripts/stenosis_model.py, found beside this script).
from stenosis_model import build_head


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--inputs", required=True, help="JSON with shape, levels, labels, imagesFile")
    parser.add_argument("--out", required=True, help="output prefix: writes OUT.json and OUT.bin")
    parser.add_argument("--unfreeze-last", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # The addon's own checkpoint (its pickled dict holds TorchScript type tags, which torch >= 2.6's default
    # weights-only loader refuses).
    checkpoint = torch.load(args.checkpoint, weights_only=False)
    meta = json.loads(checkpoint["metadata"])
    state = checkpoint["model"]
    with open(args.inputs) as f:
        inputs = json.load(f)
    shape = inputs["shape"]
    images = torch.from_numpy(np.fromfile(inputs["imagesFile"], dtype="<f4").reshape(shape).copy())
    levels = torch.tensor(inputs["levels"], dtype=torch.long)
    labels = torch.tensor(inputs["labels"], dtype=torch.long)

    backbone = torch.jit.load(args.backbone)
    # The reference's "last n layers": the last n tensors of the parameter list, in registration order.
    params = list(backbone.named_parameters())
    for _, p in params:
        p.requires_grad_(False)
    unfrozen = [name for name, _ in params[-args.unfreeze_last:]] if args.unfreeze_last > 0 else []
    for name, p in params[-args.unfreeze_last:] if args.unfreeze_last > 0 else []:
        p.requires_grad_(True)

    cls = meta["classifier"]
    embedding = nn.Embedding(5, cls["embeddingDim"])
    head = build_head(meta["backbone"]["featureDim"] + cls["embeddingDim"], cls["hiddenSizes"][0],
                      cls["hiddenSizes"][1], cls["dropout"])
    with torch.no_grad():
        for name, tensor in list(backbone.named_parameters()) + list(backbone.named_buffers()):
            tensor.copy_(state["backbone." + name])
        embedding.weight.copy_(state["embedding.weight"])
        for name, tensor in list(head.named_parameters()) + list(head.named_buffers()):
            tensor.copy_(state["head." + name])

    backbone.train()
    embedding.train()
    head.train()
    features = backbone(images)
    logits = head(torch.cat([features, embedding(levels)], dim=1))
    weights = meta["trainer"]["classWeights"]
    criterion = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32) if weights else None)
    loss = criterion(logits, labels)
    loss.backward()

    named = [("backbone." + n, p) for n, p in backbone.named_parameters() if p.requires_grad]
    named += [("embedding.weight", embedding.weight)]
    named += [("head." + n, p) for n, p in head.named_parameters()]
    grads = {name: p.grad.detach().clone() for name, p in named}
    t = meta["trainer"]
    optimizer = torch.optim.AdamW([p for _, p in named], lr=t["learningRate"], betas=tuple(t["betas"]),
                                  eps=t["eps"], weight_decay=t["weightDecay"])
    optimizer.step()

    results = {"features": features, "logits": logits, "loss": loss.reshape(1)}
    for name, g in grads.items():
        results["grad:" + name] = g
    for name, p in named:
        results["param:" + name] = p
    trainable = [name for name, _ in named]
    manifest = {"unfrozen": unfrozen, "trainable": trainable, "tensors": {}, "torch": torch.__version__}
    offset = 0
    with open(args.out + ".bin", "wb") as blob:
        for name, tensor in results.items():
            array = tensor.detach().to(torch.float32).contiguous().numpy().astype("<f4")
            blob.write(array.tobytes())
            manifest["tensors"][name] = {"shape": list(array.shape), "offset": offset, "length": int(array.size)}
            offset += int(array.size)
    with open(args.out + ".json", "w") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    main()
