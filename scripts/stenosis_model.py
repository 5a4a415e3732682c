"""The stenosis classifier in plain PyTorch, shared by the parity reference and the model export.

The addon's classifier is a TorchScript backbone, a learned per-level embedding and an MLP head:

    probabilities = softmax(head(cat([backbone(images), embedding(levels)], dim=1)), dim=1)

`build_head` gives the head with the addon's layer order, so its parameter names ("head.0.weight", ...) are the
checkpoint's; `StenosisModel` holds the three parts; `load_from_checkpoint` fills one from a checkpoint written by
`Trainer.save` (a torch.save zip with "metadata" JSON text and a "model" {name: tensor} dict).

    import sys; sys.path.insert(0, "scripts")
    from stenosis_model import load_from_checkpoint
    model = load_from_checkpoint("outputs/trained_models/resnet18_best.ckpt", "models/resnet18.pt")
"""
import json
import os

import torch
from torch import Tensor, nn

CHECKPOINT_FORMAT = "lumbar-stenosis-checkpoint"


class CheckpointError(Exception):
    """A checkpoint or backbone file that cannot be read or does not fit; the message names the file."""


def build_head(in_features, hidden1, hidden2, dropout):
    """Linear, LayerNorm, GELU, Dropout twice, then Linear to the three classes, as the addon builds it."""
    # Same layer order, and so the same parameter names, as the addon's head.
    return nn.Sequential(
        nn.Linear(in_features, hidden1), nn.LayerNorm(hidden1), nn.GELU(), nn.Dropout(dropout),
        nn.Linear(hidden1, hidden2), nn.LayerNorm(hidden2), nn.GELU(), nn.Dropout(dropout),
        nn.Linear(hidden2, 3))


class StenosisModel(nn.Module):
    """Backbone features ++ level embedding -> head -> softmax; the addon's forward pass as one module.

    `backbone` is a loaded TorchScript module, so `torch.jit.script` on the whole model keeps it as it is and only
    compiles the embedding, the head and this forward.
    """

    def __init__(self, backbone, feature_dim, embedding_dim, hidden1, hidden2, dropout, num_levels=5):
        super().__init__()
        self.backbone = backbone
        self.embedding = nn.Embedding(num_levels, embedding_dim)
        self.head = build_head(feature_dim + embedding_dim, hidden1, hidden2, dropout)

    def forward(self, images: Tensor, levels: Tensor) -> Tensor:
        """images: float [B, 3, S, S], preprocessed and normalized; levels: [B] level indices. Returns [B, 3]."""
        # The addon converts its inputs the same way, so int32 level ids or float64 images work here too.
        features = self.backbone(images.to(torch.float32))
        joined = torch.cat([features, self.embedding(levels.to(torch.long))], dim=1)
        return torch.softmax(self.head(joined), dim=1)


def read_checkpoint(checkpoint_path):
    """The checkpoint's (metadata dict, model state dict); CheckpointError when it is not one of ours."""
    if not os.path.isfile(checkpoint_path):
        raise CheckpointError(f"checkpoint not found: {checkpoint_path}")
    try:
        # weights_only=False: torch >= 2.6's default loader refuses the TorchScript type tags in the dict.
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises several types for a file that is not a torch.save zip
        raise CheckpointError(f"{checkpoint_path} is not a readable torch.save checkpoint: {error}") from error
    if not isinstance(checkpoint, dict) or "metadata" not in checkpoint or "model" not in checkpoint:
        raise CheckpointError(f"{checkpoint_path} is not a lumbar-stenosis checkpoint (no metadata and model)")
    if checkpoint.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{checkpoint_path} has format {checkpoint.get('format')!r}, not {CHECKPOINT_FORMAT}")
    try:
        metadata = json.loads(checkpoint["metadata"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{checkpoint_path} has unreadable metadata: {error}") from error
    return metadata, checkpoint["model"]


def _copy_weights(model, state, checkpoint_path, backbone_path):
    """Copies every parameter and buffer from the checkpoint's state, checking names and shapes both ways."""
    targets = {}
    for prefix, module in (("backbone.", model.backbone), ("embedding.", model.embedding), ("head.", model.head)):
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            targets[prefix + name] = tensor
    missing = [name for name in targets if name not in state]
    unexpected = [name for name in state if name not in targets]
    if missing or unexpected:
        # Almost always a checkpoint trained on another backbone than the file given.
        details = []
        if missing:
            details.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        raise CheckpointError(
            f"{checkpoint_path} does not fit the backbone {backbone_path}: {'; '.join(details)}")
    with torch.no_grad():
        for name, tensor in targets.items():
            source = state[name]
            if tuple(source.shape) != tuple(tensor.shape):
                raise CheckpointError(
                    f"{checkpoint_path}: {name} has shape {list(source.shape)}, but the model built for "
                    f"{backbone_path} expects {list(tensor.shape)}")
            tensor.copy_(source)


def load_from_checkpoint(checkpoint_path, backbone_path):
    """A StenosisModel with every weight and buffer of the checkpoint, in eval mode, on the CPU."""
    metadata, state = read_checkpoint(checkpoint_path)
    if not os.path.isfile(backbone_path):
        raise CheckpointError(f"backbone not found: {backbone_path}")
    try:
        backbone = torch.jit.load(backbone_path, map_location="cpu")
    except Exception as error:  # torch.jit.load raises RuntimeError or ValueError depending on the damage
        raise CheckpointError(f"{backbone_path} is not a loadable TorchScript file: {error}") from error
    classifier = metadata["classifier"]
    hidden1, hidden2 = classifier["hiddenSizes"]
    model = StenosisModel(backbone, metadata["backbone"]["featureDim"], classifier["embeddingDim"], hidden1,
                          hidden2, classifier["dropout"], num_levels=len(metadata.get("levels", [None] * 5)))
    _copy_weights(model, state, checkpoint_path, backbone_path)
    return model.eval()
