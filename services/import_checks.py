"""What an import checks beyond the record contract and the policy (rules.validation), with the store and the disk.

- A camera recording's `location` lies inside its library's recordings folder once `..` and symbolic links
  are resolved (retention.recordings): the nightly purge deletes that file, so a location elsewhere
  (`master.key`, `/etc/…`, `../../…`) is an invalid line, `location: outside the recordings folder`.
- An exception to a rule about readers does not name a camera recording (one in the file or in the store):
  a recording is kept longer only under a legal hold, never by an exception.

Messages name the line and the field, never the value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from kodex.config import Recordings
from kodex.retention.recordings import OUTSIDE, outside_folder
from kodex.rules.records import CameraRecording, ExceptionGrant, Incident, Loan, Reader
from kodex.rules.ruleset import Ruleset
from kodex.rules.validation import RecordProblem
from kodex.store.database import Connection
from kodex.store.repositories import recordings as stored_recordings

__all__ = ["ImportChecks"]


@dataclass
class ImportChecks:
    """Called for each valid line while a file is checked (`read_records(check=…)`); then `against_store`."""

    ruleset: Ruleset
    recordings: Recordings | None  # None: no folder known, so no recording is taken in
    _recorded: set[tuple[str, str]] = field(default_factory=set)  # (library, id) of the file's recordings
    _grants: list[tuple[int, ExceptionGrant]] = field(default_factory=list)  # exceptions to reader rules

    def __call__(
        self, line: int, record: Reader | Loan | CameraRecording | Incident | ExceptionGrant
    ) -> Iterator[RecordProblem]:
        if isinstance(record, CameraRecording):
            self._recorded.add((record.library, record.id))
            if self.recordings is None:
                yield RecordProblem(line, "location", "no recordings folder is configured; nothing can be purged")
            elif outside_folder(record.location, self.recordings.folder(record.library)):
                yield RecordProblem(line, "location", OUTSIDE)
        elif isinstance(record, ExceptionGrant):
            versions = self.ruleset.library(record.library).versions(record.rule)
            if versions and versions[-1].rule.subject == "reader":
                self._grants.append((line, record))

    def against_store(self, connection: Connection) -> list[RecordProblem]:
        """Exceptions to reader rules whose subject is a camera recording, in the file or in the store."""
        keys = sorted({(g.library, g.subject) for _, g in self._grants} - self._recorded)
        named = self._recorded | stored_recordings.among(connection, keys)
        return [
            RecordProblem(line, "subject", f"a camera recording; rule {grant.rule} is about readers")
            for line, grant in self._grants
            if (grant.library, grant.subject) in named
        ]
