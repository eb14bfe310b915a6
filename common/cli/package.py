"""`ai-infra package`: the one source archive the three Cloud Run functions are built from."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.cli.context import CliError, state_of
from common.cli.output import emit


def package_command(
    ctx: typer.Context,
    outdir: Annotated[
        Path | None, typer.Argument(help="Where to write the archive (default: the builder's).")
    ] = None,
) -> None:
    """Build the functions' source archive (what Terraform uploads)."""
    try:
        from common.platform.packaging import PackagingError, build_source_archive
    except ImportError:
        raise CliError(
            "packaging is not available in this version (common.platform.packaging)"
        ) from None
    if outdir is not None and outdir.exists() and not outdir.is_dir():
        raise CliError(f"{outdir} exists and is not a folder")
    try:
        archive = build_source_archive(outdir)
    except PackagingError as error:
        raise CliError(str(error)) from None
    path = Path(archive)
    record = {"archive": path, "bytes": path.stat().st_size if path.exists() else None}

    def render(out: Console) -> None:
        out.print(f"source archive: {path}", markup=False)

    emit(state_of(ctx), record, render)
