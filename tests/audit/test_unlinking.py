"""Once a reader is anonymised, nothing links the decision log to the person (issue: pseudonyms)."""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import select

from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace
from kodex.store.schema import decision_log, incidents, readers
from tests.retention.support import import_lines, incident, reader, run

# a reader excluded-worthy (two losses, KNTB 6.1) who is also due for anonymisation a year later (4.4)
KN = reader("kntb", "CARD-4411", renewed_at="2025-01-10", last_activity_at="2025-02-01", debt=0, active_loans=0)
LOSSES = [
    incident("kntb", "I-CARD-4411-1", "CARD-4411", "item_lost", "2025-01-20"),
    incident("kntb", "I-CARD-4411-2", "CARD-4411", "item_damaged", "2025-01-25"),
]


def test_after_anonymising_no_pseudonym_in_the_log_leads_back_to_the_reader_or_their_incidents(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [KN, *LOSSES], as_of=date(2025, 2, 1))
    run(workspace, ruleset, "kntb", date(2025, 2, 1))  # the exclusion proposal names the incidents it counted
    with workspace.engine.connect() as connection:
        proposal = json.loads(
            connection.execute(
                select(decision_log.c.entry).where(decision_log.c.action == "propose_exclusion")
            ).scalar_one()
        )
        before = {row.pseudonym for row in connection.execute(select(incidents.c.pseudonym))}
    counted = {i["id"] for i in proposal["details"]["incidents"]}
    assert counted == before  # the log names the incidents by their pseudonyms, never "I-CARD-4411-…"

    run(workspace, ruleset, "kntb", date(2026, 11, 22))  # a year without activity: anonymised

    with workspace.engine.connect() as connection:
        row = connection.execute(select(readers)).one()
        after = connection.execute(select(incidents.c.pseudonym, incidents.c.reader)).all()
        logged = [json.loads(text) for text in connection.execute(select(decision_log.c.entry)).scalars()]
    assert row.state == "anonymised" and row.pseudonym is None
    assert {p for p, _ in after}.isdisjoint(counted) and {r for _, r in after} == {None}
    named = {e["subject"] for e in logged} | {i["id"] for e in logged for i in e["details"].get("incidents", [])}
    assert proposal["subject"] in named  # the log still holds what was decided …
    assert named.isdisjoint({p for p, _ in after})  # … but no pseudonym in it is found in the store any more
