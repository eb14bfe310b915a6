"""Fuzzing bad files: byte flips and cuts must end in a readable permanent error or a result,
never another exception, and the message must not quote the file's bytes."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from common.platform.errors import PermanentIngestionError

QUOTED_BYTES = ("b'", "\\x")


def mangle(
    original: bytes,
    rng: random.Random,
    *,
    flips: int = 40,
    cut: float = 0.3,
    alphabet: bytes | None = None,
    keep: int = 0,
) -> bytes:
    """Up to `flips` bytes replaced (by `alphabet`'s, else any), and with probability `cut` the
    tail cut off; the first `keep` bytes (a signature) stay."""
    data = bytearray(original)
    for _ in range(rng.randint(1, flips)):
        data[rng.randrange(keep, len(data))] = (
            rng.choice(alphabet) if alphabet else rng.randrange(256)
        )
    if rng.random() < cut:
        del data[rng.randrange(keep, len(data)) :]
    return bytes(data)


def assert_fails_only_cleanly(
    variants: Callable[[int, random.Random], bytes],
    extract: Callable[[int, bytes], object],
    *,
    seed: int,
    attempts: int,
    forbidden: Sequence[str] = QUOTED_BYTES,
) -> None:
    """Run `extract(attempt, variants(attempt, rng))` `attempts` times: each either returns or
    raises PermanentIngestionError without a `forbidden` fragment; some must be refused."""
    rng = random.Random(seed)
    rejected = 0
    for attempt in range(attempts):
        data = variants(attempt, rng)
        try:
            extract(attempt, data)
        except PermanentIngestionError as error:
            rejected += 1
            assert not any(fragment in str(error) for fragment in forbidden), str(error)
    assert rejected > 0
