"""The fast CPU inference path of the transformer encoders: ONNX Runtime with int8 weights.

Chosen by measurement (``benchmarks/results/serve.md``): for one title through MiniLM's first 3
layers, ONNX Runtime with int8 dynamic quantisation took 1.9 ms against 10.5 ms for torch in
float32, 4.7 ms for ONNX Runtime in float32 and 4.4 ms for torch's own int8 dynamic quantisation
(``torch.ao``; one thread each, 2026-12-03), at the same closeness to the float model (cosine 0.97
and 0.96 of the pooled vectors). The graph skips PyTorch's per-operation dispatch, which is most of
the time of so small a model. Weights get one scale per output column (``per_channel``): on
EURLEX57K-titles dev, XR-Transformer's P@1 / P@5 were 91.82 / 68.75 per column and 91.48 / 68.62
with one scale per matrix, against 91.72 / 68.80 in float32, at the same speed.

At load, the float encoder is exported to ONNX (with the layer taps the method reads), its
``MatMul`` weights are quantised to int8 (``onnxruntime.quantization.quantize_dynamic``: weights
int8, each activation quantised from its own range at run time, so no calibration data), and an
``InferenceSession`` replaces the encoder. The saved model is never changed: the export happens in
a temporary folder, and a model with an ONNX encoder refuses to be saved.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xmc.exceptions import XMCError


class OnnxTextEncoder(nn.Module):
    """A :class:`~xmc.nn.encoders.TextEncoder` exported for inference: same call, same outputs (up to
    int8 rounding), for the ``taps`` it was exported with."""

    def __init__(self, session, dim: int, n_layers: int, taps):
        super().__init__()
        self.session, self._dim, self._n_layers, self.taps = session, dim, n_layers, taps

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def n_layers(self) -> int:
        return self._n_layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, taps=None):
        if taps != self.taps:
            raise ValueError(f"this encoder was exported for taps {self.taps}, not {taps}")
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64, copy=False),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64, copy=False)}
        outputs = [torch.from_numpy(o) for o in self.session.run(None, feeds)]
        return outputs[0] if taps is None else outputs


class _Exported(nn.Module):
    def __init__(self, encoder: nn.Module, taps):
        super().__init__()
        self.encoder, self.taps = encoder, taps

    def forward(self, input_ids, attention_mask):
        out = self.encoder(input_ids, attention_mask, self.taps)
        return out if self.taps is None else tuple(out)


def onnx_int8_encoder(encoder: nn.Module, taps=None, threads: int = 0, per_channel: bool = True) -> OnnxTextEncoder:
    """``encoder`` (a TextEncoder) as an int8 ONNX Runtime session reading ``taps``; ``per_channel``:
    one int8 scale per output column of each weight instead of one per matrix."""
    try:
        import onnxruntime as ort
        import onnxruntime.quantization  # noqa: F401  (int8_model's)
    except ModuleNotFoundError as exc:
        raise XMCError(f"--quantize needs {exc.name}: pip install 'xmc[transformer]'") from None
    model_bytes = int8_model(encoder, taps, per_channel)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: a server's second core stays free for the next request
    # (CPU per text 8.9 ms sleeping against 13.2 spinning, at about the same latency).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return OnnxTextEncoder(session, encoder.dim, encoder.n_layers, taps)


def int8_model(encoder: nn.Module, taps=None, per_channel: bool = True) -> bytes:
    """The ONNX model of ``encoder`` with int8 weights (``per_channel``: a scale per output column
    of each weight matrix, else one per matrix), as bytes."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    encoder = encoder.cpu().eval()
    n_out = 1 if taps is None else len(taps)
    ids = torch.ones((2, 8), dtype=torch.long)
    with tempfile.TemporaryDirectory(prefix="xmc-onnx-") as tmp:
        plain, int8 = Path(tmp) / "encoder.onnx", Path(tmp) / "encoder.int8.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(_Exported(encoder, taps), (ids, torch.ones_like(ids)), str(plain), dynamo=False,
                              input_names=["input_ids", "attention_mask"],
                              output_names=[f"tap_{i}" for i in range(n_out)], opset_version=17,
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            **{f"tap_{i}": {0: "batch"} for i in range(n_out)}})
        with _quiet_root_logger():  # "consider pre-processing": a hint for image models, not for this one
            quantize_dynamic(str(plain), str(int8), weight_type=QuantType.QInt8, per_channel=per_channel)
        return int8.read_bytes()


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def is_quantized(module: nn.Module) -> bool:
    return isinstance(module, OnnxTextEncoder)


def refuse_quantized(module: nn.Module) -> None:
    """A quantised encoder is a view for inference: saving it would lose the float weights."""
    if is_quantized(module):
        raise XMCError("this model was quantised for CPU inference (--quantize); save the float model instead")


