"""The `ai-infra` console script: settings errors at import time become one line, not a traceback.

The command modules import the schema models, which read the settings (the embedding
dimension) when imported, so a wrong or missing setting fails before the CLI's own error
handling exists; this catches that one case.
"""

import sys

from common.platform.config import ConfigError


def main() -> None:
    try:
        from common.cli.main import main as run
    except ConfigError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        raise SystemExit(1) from None
    run()
