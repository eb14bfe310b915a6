"""The local stack's inbox: files copied into `inbox/<project_id>/` are uploaded and announced.

A file is taken once its size and mtime have been stable for one scan (so half-copied files are
not uploaded), uploaded to the GCS emulator as `<project_id>/<relative path>`, and the finalize
CloudEvent is posted to ingest_trigger exactly as Eventarc would. Unchanged content (same MD5)
is not uploaded again. A file whose upload or event fails (an emulator or the trigger is
restarting) is reported in one line and tried again on the next scans, as Eventarc retries an
undelivered event. Polling keeps it portable and dependable on every filesystem.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from common.localstack.eventarc import FINALIZED, send_storage_event
from common.platform.errors import TransientError
from common.platform.formats import sniff_mime_type
from common.platform.storage import get_blob_store

IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", "~")


class InboxWatcher:
    def __init__(
        self,
        root: Path,
        *,
        bucket: str,
        event_sink_url: str,
        aliases: dict[str, str],
        report: Callable[[str], None],
    ) -> None:
        self.root = root
        self.bucket = bucket
        self.event_sink_url = event_sink_url
        self.aliases = aliases
        self.report = report
        self._seen: dict[Path, tuple[int, float]] = {}
        self._sent: dict[Path, str] = {}
        self._unannounced: set[Path] = set()  # uploaded, but no event has reached the trigger

    def prepare(self, folders: Iterable[str]) -> None:
        for folder in folders:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        # Files already there at start-up count as seen: they are uploaded unless unchanged.
        self.scan()

    def scan(self) -> None:
        for path in sorted(self.root.glob("*/**/*")):
            if path.is_file() and not self._ignored(path):
                try:
                    self._consider(path)
                except (OSError, httpx.HTTPError, TransientError) as error:
                    self.report(f"inbox: {path.name} not handed over yet ({error}); will retry")

    def _ignored(self, path: Path) -> bool:
        relative = path.relative_to(self.root)
        return any(part.startswith(".") for part in relative.parts) or path.name.endswith(
            IGNORED_SUFFIXES
        )

    def _consider(self, path: Path) -> None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        signature = (stat.st_size, stat.st_mtime)
        if self._seen.get(path) != signature:
            self._seen[path] = signature  # wait one more scan for the copy to settle
            return
        data = path.read_bytes()
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if self._sent.get(path) == digest:
            return
        project_folder, *rest = path.relative_to(self.root).parts
        project_id = self.aliases.get(project_folder, project_folder)
        try:
            uuid.UUID(project_id)
        except ValueError:
            self.report(f"inbox: {path} is not under a project id folder; skipped")
            self._sent[path] = digest
            return
        name = f"{project_id}/{'/'.join(rest)}"
        store = get_blob_store()
        current = store.stat(self.bucket, name)
        unchanged = current is not None and current.md5_hex == digest
        if unchanged and path not in self._unannounced:
            self._sent[path] = digest
            return
        if current is not None and unchanged:
            blob = current
        else:
            blob = store.upload(self.bucket, name, data, sniff_mime_type(path.name, None))
        self._unannounced.add(path)
        response = send_storage_event(self.event_sink_url, FINALIZED, blob)
        response.raise_for_status()  # Eventarc retries a failed delivery; so do we
        self._unannounced.discard(path)
        self._sent[path] = digest
        self.report(f"inbox: uploaded {path.name} -> {blob.gcs_uri} ({response.status_code})")
