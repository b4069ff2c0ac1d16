"""Checkpoints kept outside kodex, over HTTP: GET …/audit/checkpoint gives the signed note, POST
…/audit/verification proves the log consistent with the notes sent (issue 16: the log can be rolled back unseen)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from fastapi.testclient import TestClient

from kodex.api.web import create_app
from kodex.retention.run import run_library
from kodex.rules.ruleset import Ruleset
from kodex.services.importing import import_records
from kodex.services.setup import Workspace
from kodex.services.users import add_user
from tests.api.test_cli_kept_checkpoints import backup, restore
from tests.retention.support import clock_at
from tests.support import ROOT

LIBRARY = "svkpk"
SAMPLE = ROOT / "samples" / "readers.jsonl"
WAIT = 60.0


@dataclass
class Auditor:
    client: TestClient
    work: Workspace
    ruleset: Ruleset
    headers: dict[str, str]

    def note(self) -> str:
        response = self.client.get(f"/v1/libraries/{LIBRARY}/audit/checkpoint", headers=self.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        return response.text

    def verify(self, notes: str) -> dict[str, object]:
        response = self.client.post(
            f"/v1/libraries/{LIBRARY}/audit/verification",
            content=notes.encode(),
            headers={**self.headers, "Content-Type": "text/plain"},
        )
        assert response.status_code == 200, response.text
        answer: dict[str, object] = response.json()
        return answer

    def night(self, day: date) -> None:
        run_library(self.work.engine, self.ruleset, self.work.master, LIBRARY, day, wait=WAIT)


@pytest.fixture
def auditor(workspace: Workspace, ruleset: Ruleset, monkeypatch: pytest.MonkeyPatch) -> Iterator[Auditor]:
    clock_at(monkeypatch, date(2027, 3, 15))
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    import_records(
        lambda: iter(lines), workspace.engine, ruleset, workspace.master, date(2026, 11, 22),
        recordings=workspace.settings.recordings,
    )  # fmt: skip
    _, token = add_user(workspace.engine, workspace.master, LIBRARY, "auditor", "Auditorka")
    with TestClient(create_app(workspace, ruleset)) as client:
        found = Auditor(client, workspace, ruleset, {"Authorization": f"Bearer {token}"})
        found.night(date(2026, 11, 22))
        yield found


def test_get_checkpoint_returns_the_newest_checkpoint_as_a_c2sp_signed_note(auditor: Auditor) -> None:
    text, signature = auditor.note().split("\n\n")
    assert text.split("\n")[0] == f"kodex/{LIBRARY}"
    assert signature.startswith(f"\u2014 kodex/{LIBRARY} ")


def test_post_verification_with_a_kept_note_passes_while_the_log_only_grows(auditor: Auditor) -> None:
    kept = auditor.note()
    auditor.night(date(2027, 3, 15))
    answer = auditor.verify(kept + auditor.note())
    assert (answer["ok"], answer["kept"], answer["problems"]) == (True, 2, [])


def test_post_verification_with_a_kept_note_fails_after_an_older_copy_is_restored(auditor: Auditor) -> None:
    older = backup(auditor.work.engine)
    auditor.night(date(2027, 3, 15))
    kept = auditor.note()
    restore(auditor.work.engine, older)
    assert auditor.client.get(f"/v1/libraries/{LIBRARY}/audit/verification", headers=auditor.headers).json()["ok"]

    answer = auditor.verify(kept)

    assert answer["ok"] is False
    assert "entries were removed or an older copy restored" in str(answer["problems"])


def test_post_verification_with_anything_but_a_signed_note_of_this_library_is_not_ok(auditor: Auditor) -> None:
    answer = auditor.verify("kodex/kntb\n1\nAAAA\n\n\u2014 kodex/kntb AAAAAAAA\n")
    assert answer["ok"] is False
    assert answer["problems"] == [
        f"{LIBRARY}: the checkpoint you kept: the checkpoint is of the log 'kodex/kntb', not of 'kodex/{LIBRARY}': "
        "keep one file per library"
    ]


def test_post_verification_without_a_body_is_refused_with_422_naming_what_to_send(auditor: Auditor) -> None:
    answer = auditor.client.post(f"/v1/libraries/{LIBRARY}/audit/verification", headers=auditor.headers)
    assert answer.status_code == 422
    assert "send the checkpoint notes you kept" in answer.text
