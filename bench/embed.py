"""Throughput of the local embedder (all-MiniLM-L6-v2 in numpy) on 256-token chunks.

Prints chunks/s at batch sizes 1, 16 and 64 (best of interleaved rounds), each as a ratio to
batch size 1, and the encoder's effective GFLOP/s against this machine's one-thread float32
matrix-multiply rate measured in the same run (the ceiling for a numpy encoder on one core; the
encoder may pass it by running batches on two cores). Ends with one JSON line of the figures.
Run: uv run --extra local python bench/embed.py
"""

from __future__ import annotations

import json
import random
import time

import numpy as np

from common.inference.embedders.local_minilm import LocalMiniLMEmbedder

CHUNK_TOKENS = 254  # + [CLS]/[SEP] = the model's 256-wordpiece window
BATCH_SIZES = (1, 16, 64)
ROUNDS = 2
SENTENCE = (
    "the retrieval index stores vector embeddings for every chunk of a document and a query "
    "finds the nearest ones by cosine distance before the answer cites its sources with page "
    "numbers while ingestion extracts text from pdf html markdown files"
)
WORDS = SENTENCE.split(" ")


def chunk_texts(embedder: LocalMiniLMEmbedder, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(CHUNK_TOKENS)]
        while embedder.count_tokens(" ".join(words)) > CHUNK_TOKENS:
            words.pop()
        texts.append(" ".join(words))
    return texts


def encoder_gflop(tokens: int) -> float:
    """Multiply-adds of one BERT-mini (6 x 384, FFN 1536) forward pass over `tokens` tokens."""
    hidden, ffn, layers = 384, 1536, 6
    dense = 2 * tokens * hidden * (3 * hidden + hidden + 2 * ffn)
    attention = 2 * 2 * tokens * tokens * hidden
    return layers * (dense + attention) / 1e9


def gemm_gflops() -> float:
    a = np.random.default_rng(0).random((1024, 384), dtype=np.float32)
    b = np.random.default_rng(1).random((384, 1536), dtype=np.float32)
    a @ b
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        a @ b
    return 2 * 1024 * 384 * 1536 * rounds / (time.perf_counter() - started) / 1e9


def main() -> None:
    embedder = LocalMiniLMEmbedder()
    started = time.perf_counter()
    embedder.embed_query("warm up")  # loads weights and tokenizers
    load_seconds = time.perf_counter() - started
    peak = gemm_gflops()  # after loading: the embedder has set BLAS to one thread
    texts = chunk_texts(embedder, max(BATCH_SIZES), 7)
    # Rounds interleave the batch sizes and keep each one's best: on a shared machine the load
    # of other processes shifts during a run, and this spreads it over all sizes alike.
    rates: dict[int, float] = dict.fromkeys(BATCH_SIZES, 0.0)
    for _ in range(ROUNDS):
        for batch_size in BATCH_SIZES:
            count = max(4, batch_size)
            started = time.perf_counter()
            for i in range(0, count, batch_size):
                embedder.embed_documents(texts[i : i + batch_size])
            rate = count / (time.perf_counter() - started)
            rates[batch_size] = max(rates[batch_size], rate)
    flop = encoder_gflop(CHUNK_TOKENS + 2)
    best = max(rates.values())
    print(f"model load: {load_seconds:.2f} s; float32 GEMM (1 BLAS thread): {peak:.1f} GFLOP/s")
    print(f"{'batch':>6} {'chunks/s':>9} {'vs batch 1':>11} {'GFLOP/s':>8}")
    for batch_size, rate in rates.items():
        print(f"{batch_size:>6} {rate:>9.2f} {rate / rates[1]:>10.2f}x {rate * flop:>8.1f}")
    print(f"encoder at best batch: {best * flop / peak:.2f}x of one-thread GEMM rate")
    figures = {
        "model": embedder.model_name,
        "chunk_tokens": CHUNK_TOKENS + 2,
        "chunks_per_s": {str(k): round(v, 2) for k, v in rates.items()},
        "load_seconds": round(load_seconds, 2),
        "gemm_gflops_one_thread": round(peak, 1),
        "encoder_gflops_best": round(best * flop, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
