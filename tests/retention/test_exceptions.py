"""Exceptions granted and revoked: each an entry in the decision log; a revoked one no longer holds the rule back."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from kodex.audit.verify import verify_log
from kodex.errors import InvalidRecords, InvalidRequest, NotAuthorised, SubjectNotFound
from kodex.rules.ruleset import Ruleset
from kodex.services.rule_exceptions import grant_exception, list_exceptions, revoke_exception
from kodex.services.setup import Workspace
from kodex.store.schema import decision_log, exceptions, readers
from tests.retention.support import AS_OF, import_lines, reader, recording, run, with_recordings

RULE = "kntb.retention.unused_for_a_year"  # 4.4: exceptions by director or authorised_employee
LAPSED = reader("kntb", "KN-7", renewed_at="2023-01-10", last_activity_at="2024-01-10", debt=0, active_loans=0)
GRANT = {
    "type": "exception", "library": "kntb", "id": "E-KN-7", "subject": "KN-7", "rule": RULE, "role": "director",
    "granted_by": "Ing. Jana Ředitelová", "reason": "the reader is abroad until spring", "from": "2026-10-01",
    "until": "2027-03-31",
}  # fmt: skip
DIRECTOR = {"type": "user", "id": None, "role": "director"}


def entries(work: Workspace, kind: str) -> list[dict[str, Any]]:
    with work.engine.connect() as connection:
        rows = connection.execute(
            select(decision_log.c.entry).where(decision_log.c.kind == kind).order_by(decision_log.c.seq)
        )
        return [json.loads(r.entry) for r in rows]


def state_of(work: Workspace, record_id: str) -> str:
    with work.engine.connect() as connection:
        return connection.execute(select(readers.c.state).where(readers.c.id == record_id)).scalar_one()


def authority(ruleset: Ruleset) -> Any:
    return lambda rule: ruleset.library("kntb").versions(rule)[-1].rule.exception_by


def test_a_granted_exception_is_logged_by_pseudonym_with_its_terms_and_holds_the_rule_back(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [LAPSED, GRANT])

    (granted,) = entries(workspace, "exception_granted")
    with workspace.engine.connect() as connection:
        pseudonym = connection.execute(select(exceptions.c.pseudonym)).scalar_one()
        subject = connection.execute(select(readers.c.pseudonym)).scalar_one()
    assert (granted["exception"], granted["subject"], granted["rule"], granted["outcome"]) == (
        pseudonym, subject, RULE, "granted"
    )  # fmt: skip
    assert granted["details"] == {"role": "director", "from": "2026-10-01", "until": "2027-03-31"}
    assert "E-KN-7" not in json.dumps(granted) and "Ředitelová" not in json.dumps(granted)
    run(workspace, ruleset, "kntb")
    assert state_of(workspace, "KN-7") != "anonymised"  # retained by the exception (its registration lapsed)


def test_a_revoked_exception_is_logged_and_the_rule_applies_at_the_next_run(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [LAPSED, GRANT])
    run(workspace, ruleset, "kntb")

    entry = revoke_exception(
        workspace.engine, workspace.master, "kntb", "E-KN-7", AS_OF, DIRECTOR, authority=authority(ruleset)
    )

    assert entries(workspace, "exception_revoked") == [entry]
    assert (entry["outcome"], entry["actor"]) == ("revoked", DIRECTOR)
    result = run(workspace, ruleset, "kntb", date(2026, 11, 23))
    assert result.counts[("anonymise", "applied")] == 1
    assert state_of(workspace, "KN-7") == "anonymised"
    assert [v.problems for v in verify_log(workspace.engine, library="kntb")] == [[]]


def test_importing_a_revoked_exception_again_does_not_revive_it_but_a_changed_one_is_a_new_grant(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    other = reader("kntb", "KN-8", renewed_at="2026-01-10", last_activity_at="2026-10-10")
    grant = {**GRANT, "id": "E-KN-8", "subject": "KN-8"}
    import_lines(workspace, ruleset, [other, grant])
    revoke_exception(workspace.engine, workspace.master, "kntb", "E-KN-8", AS_OF, DIRECTOR)

    import_lines(workspace, ruleset, [other, grant])
    assert len(entries(workspace, "exception_granted")) == 1  # the same record: still revoked, not granted again

    import_lines(workspace, ruleset, [other, {**grant, "until": "2027-06-30"}])
    granted = entries(workspace, "exception_granted")
    assert [g["details"]["until"] for g in granted] == ["2027-03-31", "2027-06-30"]
    with workspace.engine.connect() as connection:
        assert connection.execute(select(exceptions.c.revoked_as_of)).scalar_one() is None


def test_revoking_needs_a_role_the_rule_gives_authority_and_changes_nothing_otherwise(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [LAPSED, GRANT])
    with workspace.engine.connect() as connection:
        before = connection.execute(select(func.count()).select_from(decision_log)).scalar_one()

    with pytest.raises(NotAuthorised, match="director, authorised_employee"):
        revoke_exception(
            workspace.engine, workspace.master, "kntb", "E-KN-7", AS_OF,
            {"type": "user", "id": None, "role": "librarian"}, authority=authority(ruleset),
        )  # fmt: skip
    with pytest.raises(SubjectNotFound, match="has no exception with this id"):
        revoke_exception(workspace.engine, workspace.master, "kntb", "E-9", AS_OF, DIRECTOR)

    with workspace.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(decision_log)).scalar_one() == before
        assert connection.execute(select(exceptions.c.revoked_as_of)).scalar_one() is None


def test_anonymising_a_reader_deletes_the_exceptions_about_them(workspace: Workspace, ruleset: Ruleset) -> None:
    short = {**GRANT, "until": "2026-11-01"}  # ended: the reader is anonymised, the grant's free text goes too
    import_lines(workspace, ruleset, [LAPSED, short])

    run(workspace, ruleset, "kntb")

    assert state_of(workspace, "KN-7") == "anonymised"
    with workspace.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(exceptions)).scalar_one() == 0


# -- the limits of an exception (issue 16) --------------------------------------------------------------------------

SVKPK_DIRECTOR = {"type": "user", "id": "u-director-1", "role": "director", "name": "Mgr. Ivana Ředitelová"}
SVKPK_RULE = "svkpk.retention.after_settlement"  # a reader rule; exception_by: director, authorised_employee
CAMERA_RULE = "svkpk.camera.purge_after_7_days"


def problems(refused: pytest.ExceptionInfo[InvalidRecords]) -> list[str]:
    return [str(p) for p in refused.value.problems]


@pytest.mark.parametrize(
    ("until", "accepted"),
    [("2027-10-01", True), ("2027-10-02", False), ("2099-12-31", False)],
    ids=["a year after its first day", "a day longer", "for ever"],
)
def test_an_exception_lasts_no_longer_than_the_librarys_maximum_exception_period_from_its_first_day(
    workspace: Workspace, ruleset: Ruleset, until: str, accepted: bool
) -> None:
    grant = {**GRANT, "until": until}  # from 2026-10-01; KNTB's max_period: 1 year (GDPR Art. 5(1)(e))

    if accepted:
        assert import_lines(workspace, ruleset, [LAPSED, grant]).added["exception"] == 1
        return
    with pytest.raises(InvalidRecords) as refused:
        import_lines(workspace, ruleset, [LAPSED, grant])
    assert problems(refused) == [
        "line 2: until: an exception lasts at most 1 year from its first day "
        "(GDPR čl. 5 odst. 1 písm. e); KŘ 7 sets no longest period)"
    ]
    assert entries(workspace, "exception_granted") == []


def test_a_director_granting_an_exception_longer_than_the_maximum_is_refused(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [reader("svkpk", "SV-1", renewed_at="2023-01-01", debt=0, active_loans=0)])
    grant = {"subject": "SV-1", "rule": SVKPK_RULE, "reason": "court case", "until": date(2027, 11, 23)}

    with pytest.raises(InvalidRecords, match="line 1: until: an exception lasts at most 1 year"):
        grant_exception(workspace.engine, ruleset, workspace.master, "svkpk", grant, SVKPK_DIRECTOR, AS_OF)

    assert list_exceptions(workspace.engine, workspace.master, "svkpk") == []
    granted = grant_exception(
        workspace.engine, ruleset, workspace.master, "svkpk", {**grant, "until": date(2027, 11, 22)}, SVKPK_DIRECTOR,
        AS_OF,
    )  # fmt: skip
    assert (granted["from"], granted["until"]) == (AS_OF, date(2027, 11, 22))


def test_an_exception_to_the_camera_recording_rule_is_refused_a_legal_hold_keeps_a_recording(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    work = with_recordings(workspace, tmp_path / "cctv")
    video = work.settings.recordings.folder("svkpk") / "cam-1.mp4"
    import_lines(work, ruleset, [recording("cam-1", "2026-11-10T11:00:00+01:00", video)])
    grant = {"subject": "cam-1", "rule": CAMERA_RULE, "reason": "evidence", "until": date(2026, 12, 31)}

    with pytest.raises(InvalidRecords) as refused:
        grant_exception(work.engine, ruleset, work.master, "svkpk", grant, SVKPK_DIRECTOR, AS_OF)

    assert problems(refused) == [
        f"line 1: rule: rule {CAMERA_RULE} is about camera recordings: keep one longer by a legal hold"
    ]
    assert list_exceptions(work.engine, work.master, "svkpk") == []


@pytest.mark.parametrize("where", ["in the store", "in the same file"])
def test_an_exception_to_a_reader_rule_naming_a_camera_recording_is_refused(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path, where: str
) -> None:
    work = with_recordings(workspace, tmp_path / "cctv")
    camera = recording("cam-1", "2026-11-10T11:00:00+01:00", work.settings.recordings.folder("svkpk") / "cam-1.mp4")
    grant = {
        "type": "exception", "library": "svkpk", "id": "E-CAM", "subject": "cam-1", "rule": SVKPK_RULE,
        "role": "director", "granted_by": "Mgr. Ivana Ředitelová", "reason": "keep it", "from": "2026-11-20",
        "until": "2026-12-31",
    }  # fmt: skip
    if where == "in the store":
        import_lines(work, ruleset, [camera])
        records: list[dict[str, Any]] = [grant]
    else:
        records = [grant, camera]

    with pytest.raises(InvalidRecords) as refused:
        import_lines(work, ruleset, records)

    assert problems(refused) == [f"line 1: subject: a camera recording; rule {SVKPK_RULE} is about readers"]
    assert list_exceptions(work.engine, work.master, "svkpk") == []


def test_a_revocation_cannot_be_backdated_before_the_exceptions_first_day(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [LAPSED, GRANT])  # from 2026-10-01

    with pytest.raises(InvalidRequest, match=r"before the exception's first day \(2026-10-01\)"):
        revoke_exception(workspace.engine, workspace.master, "kntb", "E-KN-7", date(2026, 9, 30), DIRECTOR)

    assert entries(workspace, "exception_revoked") == []
    with workspace.engine.connect() as connection:
        assert connection.execute(select(exceptions.c.revoked_as_of)).scalar_one() is None
    revoke_exception(workspace.engine, workspace.master, "kntb", "E-KN-7", date(2026, 10, 1), DIRECTOR)
    assert len(entries(workspace, "exception_revoked")) == 1
