"""The Koha adapter against a fake Koha written from Koha's published REST API (tests/fakes/koha.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from kodex.config import KohaConnector
from kodex.services.connectors import Carried, connector_for
from kodex.services.connectors.koha import NOT_OVER_THE_API, READ_ONLY, KohaAdapter
from kodex.services.instructions import Instruction
from tests.fakes.koha import FakeKoha

WRITTEN = datetime(2026, 3, 10, 1, 30, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def koha() -> FakeKoha:
    return FakeKoha()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def config(koha: FakeKoha, *, delete_on_anonymise: bool = True, secret: str | None = None) -> KohaConnector:
    return KohaConnector.model_validate(
        {
            "type": "koha",
            "url": "https://koha.example.org",
            "client_id": koha.client_id,
            "client_secret": secret if secret is not None else koha.client_secret,
            "delete_on_anonymise": delete_on_anonymise,
        }
    )


@pytest.fixture
def adapter(koha: FakeKoha, clock: Clock) -> Iterator[KohaAdapter]:
    adapter = KohaAdapter(config(koha), transport=koha.transport(), clock=clock)
    yield adapter
    adapter.close()


def instruction(action: str, subject_id: int | str) -> Instruction:
    return Instruction(
        id="0b9f5c2e-0000-4000-8000-000000000001",
        sequence=1,
        library="svkpk",
        action=action,
        subject_type="reader",
        subject_id=str(subject_id),
        decision_id="d-1",
        rule="retention_after_registration",
        cite="SVK PK čl. 9",
        what="…",
        created_at=WRITTEN,
        due_on=date(2026, 3, 17),
        state="pending",
        overdue=False,
        attempts=0,
        outcome_code=None,
        outcome_detail=None,
        outcome_at=None,
    )


# -- anonymise: a deletion, only where the policy allows erasure ---------------------------------


def test_anonymise_deletes_the_patron_when_the_policy_allows_erasure(koha: FakeKoha, adapter: KohaAdapter) -> None:
    patron = koha.add_patron()

    carried = adapter.carry_out(instruction("anonymise", patron))

    assert carried.state == "done"
    assert koha.calls() == [f"DELETE /api/v1/patrons/{patron}"]
    assert patron in koha.deleted and patron not in koha.patrons


@pytest.mark.parametrize("allowed", [True, False], ids=["erasure-allowed", "erasure-not-allowed"])
def test_can_anonymise_follows_delete_on_anonymise(koha: FakeKoha, allowed: bool) -> None:
    adapter = KohaAdapter(config(koha, delete_on_anonymise=allowed), transport=koha.transport())

    assert adapter.can("anonymise") is allowed


def test_anonymise_without_delete_on_anonymise_is_left_to_the_work_list_and_calls_nothing(koha: FakeKoha) -> None:
    patron = koha.add_patron()
    adapter = KohaAdapter(config(koha, delete_on_anonymise=False), transport=koha.transport())

    carried = adapter.carry_out(instruction("anonymise", patron))

    assert (carried.state, carried.code) == ("failed", "not_supported")
    assert koha.requests == [] and patron in koha.patrons


@pytest.mark.parametrize(
    "refusal", ["has_checkouts", "has_debt", "has_guarantees", "is_anonymous_patron", "is_protected"]
)
def test_koha_refusing_the_deletion_rejects_it_with_kohas_code(
    koha: FakeKoha, adapter: KohaAdapter, refusal: str
) -> None:
    patron = koha.add_patron()
    if refusal == "has_checkouts":
        koha.checkouts[patron] = 2
    elif refusal == "has_debt":
        koha.debts[patron] = 10.0
    elif refusal == "has_guarantees":
        koha.guarantors.add(patron)
    elif refusal == "is_anonymous_patron":
        koha.anonymous_patron = patron
    else:
        koha.patrons[patron]["protected"] = True

    carried = adapter.carry_out(instruction("anonymise", patron))

    assert (carried.state, carried.code) == ("rejected", refusal)
    assert carried.detail == "delete the patron: Koha answered 409"  # the step and the status, not Koha's words
    assert patron in koha.patrons


def test_a_patron_koha_does_not_hold_is_erased_already_so_its_anonymise_is_done(
    koha: FakeKoha, adapter: KohaAdapter
) -> None:
    carried = adapter.carry_out(instruction("anonymise", 999))

    assert (carried.state, carried.code) == ("done", "already_gone")


def test_a_delete_whose_answer_was_lost_is_done_when_tried_again(koha: FakeKoha, adapter: KohaAdapter) -> None:
    patron = koha.add_patron()
    assert adapter.carry_out(instruction("anonymise", patron)).code is None  # deleted; its answer never reached kodex
    again = adapter.carry_out(instruction("anonymise", patron))

    assert patron not in koha.patrons
    assert (again.state, again.code) == ("done", "already_gone")


def test_a_reader_id_that_is_no_patron_id_fails_without_calling_koha(koha: FakeKoha, adapter: KohaAdapter) -> None:
    carried = adapter.carry_out(instruction("anonymise", "R-0042"))

    assert (carried.state, carried.code) == ("failed", "invalid_subject_id")
    assert koha.requests == []


# -- registration_expired: the patron's expiry date -----------------------------------------------


def test_registration_expired_sets_the_expiry_date_by_putting_the_whole_patron_back(
    koha: FakeKoha, adapter: KohaAdapter
) -> None:
    patron = koha.add_patron(expiry_date="2030-01-01", email="jana@example.org")

    carried = adapter.carry_out(instruction("registration_expired", patron))

    assert carried.state == "done"
    assert koha.calls() == [f"GET /api/v1/patrons/{patron}", f"PUT /api/v1/patrons/{patron}"]
    sent = koha.requests[-1].body
    assert sent["expiry_date"] == "2026-03-09"  # the day before the instruction: expired from then on in Koha
    assert not set(READ_ONLY) & set(sent)
    assert koha.patrons[patron]["expiry_date"] == "2026-03-09"
    assert koha.patrons[patron]["email"] == "jana@example.org"  # the rest of the patron is kept


def test_a_registration_already_expired_in_koha_is_done_without_a_change(koha: FakeKoha, adapter: KohaAdapter) -> None:
    patron = koha.add_patron(expiry_date="2025-12-31")

    carried = adapter.carry_out(instruction("registration_expired", patron))

    assert carried.state == "done"
    assert koha.calls() == [f"GET /api/v1/patrons/{patron}"]
    assert koha.patrons[patron]["expiry_date"] == "2025-12-31"


@pytest.mark.parametrize("action", sorted(NOT_OVER_THE_API))
def test_what_koha_cannot_do_over_its_api_is_left_to_the_work_list(koha: FakeKoha, action: str) -> None:
    adapter = KohaAdapter(config(koha, delete_on_anonymise=True), transport=koha.transport())

    assert adapter.can(action) is False


# -- tokens ------------------------------------------------------------------------------------


def test_one_token_serves_until_it_expires_then_a_new_one_is_fetched(
    koha: FakeKoha, adapter: KohaAdapter, clock: Clock
) -> None:
    first, second, third = koha.add_patron(), koha.add_patron(), koha.add_patron()

    adapter.carry_out(instruction("anonymise", first))
    adapter.carry_out(instruction("anonymise", second))
    assert _token_requests(koha) == 1

    clock.now += koha.token_lifetime
    assert adapter.carry_out(instruction("anonymise", third)).state == "done"
    assert _token_requests(koha) == 2


def test_a_token_koha_no_longer_accepts_is_renewed_once_on_401(koha: FakeKoha, adapter: KohaAdapter) -> None:
    first, second = koha.add_patron(), koha.add_patron()
    adapter.carry_out(instruction("anonymise", first))
    koha.expire_tokens()

    carried = adapter.carry_out(instruction("anonymise", second))

    assert carried.state == "done"
    assert _token_requests(koha) == 2
    assert koha.calls()[-2:] == [f"DELETE /api/v1/patrons/{second}"] * 2


def test_a_second_401_after_a_new_token_fails_not_authorised(koha: FakeKoha, adapter: KohaAdapter) -> None:
    patron = koha.add_patron()
    koha.answer_next(401, times=2)

    carried = adapter.carry_out(instruction("anonymise", patron))

    assert (carried.state, carried.code) == ("failed", "not_authorised")
    assert _token_requests(koha) == 2
    assert len(koha.calls("DELETE")) == 2


def test_wrong_client_credentials_fail_not_authorised(koha: FakeKoha) -> None:
    patron = koha.add_patron()
    adapter = KohaAdapter(config(koha, secret="not-the-secret"), transport=koha.transport())

    carried = adapter.carry_out(instruction("anonymise", patron))

    assert (carried.state, carried.code) == ("failed", "not_authorised")
    assert koha.calls() == [] and patron in koha.patrons


def test_a_missing_permission_fails_not_authorised(koha: FakeKoha, clock: Clock) -> None:
    koha.permissions = frozenset({"list_borrowers", "edit_borrowers"})  # no delete_borrowers
    patron = koha.add_patron()
    adapter = KohaAdapter(config(koha), transport=koha.transport(), clock=clock)

    carried = adapter.carry_out(instruction("anonymise", patron))

    assert (carried.state, carried.code) == ("failed", "not_authorised")
    assert patron in koha.patrons


# -- Koha's other answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(500, None, None), (503, "7", 7.0), (429, "30", 30.0)],
    ids=["500", "503-retry-after", "429-retry-after"],
)
def test_server_errors_and_rate_limits_are_retried_honouring_retry_after(
    koha: FakeKoha, adapter: KohaAdapter, status: int, retry_after: str | None, expected: float | None
) -> None:
    patron = koha.add_patron()
    koha.answer_next(status, retry_after=retry_after)

    carried = adapter.carry_out(instruction("anonymise", patron))

    assert carried == Carried(
        "retry", code=f"http_{status}", detail=f"delete the patron: Koha answered {status}", retry_after=expected
    )
    assert patron in koha.patrons


@pytest.mark.parametrize("status", [400, 422])
def test_a_bad_request_fails_with_a_code(koha: FakeKoha, adapter: KohaAdapter, status: int) -> None:
    patron = koha.add_patron()
    koha.answer_next(status)

    carried = adapter.carry_out(instruction("anonymise", patron))

    assert (carried.state, carried.code) == ("failed", f"http_{status}")


def test_a_timeout_is_retried(koha: FakeKoha, adapter: KohaAdapter) -> None:
    patron = koha.add_patron()
    koha.time_out_next()

    carried = adapter.carry_out(instruction("anonymise", patron))

    assert (carried.state, carried.code) == ("retry", "timeout")
    assert patron in koha.patrons


def test_koha_not_reached_is_retried(koha: FakeKoha) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    adapter = KohaAdapter(config(koha), transport=httpx.MockTransport(refuse))

    carried = adapter.carry_out(instruction("anonymise", 101))

    assert (carried.state, carried.code) == ("retry", "unreachable")


def test_neither_the_client_secret_nor_a_token_reaches_an_error_or_the_log(
    koha: FakeKoha, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    said: list[Any] = []
    good = KohaAdapter(config(koha), transport=koha.transport(), clock=clock)
    patrons = [koha.add_patron() for _ in range(4)]
    said.append(good.carry_out(instruction("anonymise", patrons[0])))
    koha.expire_tokens()
    said.append(good.carry_out(instruction("registration_expired", patrons[1])))
    koha.answer_next(500)
    said.append(good.carry_out(instruction("anonymise", patrons[2])))
    koha.answer_next(401, times=2)
    said.append(good.carry_out(instruction("anonymise", patrons[3])))
    said.extend(good.check())
    wrong_secret = "wrong-" + koha.client_secret
    bad = KohaAdapter(config(koha, secret=wrong_secret), transport=koha.transport())
    said.append(bad.carry_out(instruction("anonymise", patrons[3])))
    said.extend(bad.check())

    tokens = {r.bearer for r in koha.requests if r.bearer}
    assert len(tokens) >= 3
    text = caplog.text + "\n".join(repr(s) for s in said)
    for secret in (koha.client_secret, wrong_secret, *tokens):
        assert secret not in text


# -- check(): connects and proves the permissions, changes nothing ------------------------------


def test_check_passes_against_koha_and_changes_nothing(koha: FakeKoha, adapter: KohaAdapter) -> None:
    patron = koha.add_patron()
    before = {k: dict(v) for k, v in koha.patrons.items()}

    checks = adapter.check()

    assert [(c.name, c.ok) for c in checks] == [("token", True), ("list patrons", True), ("read a patron", True)]
    assert koha.calls() == ["GET /api/v1/patrons", f"GET /api/v1/patrons/{patron}"]
    assert koha.requests[1].query == {"_per_page": ["1"]}
    assert koha.patrons == before and koha.deleted == {}


def test_check_fails_on_wrong_credentials(koha: FakeKoha) -> None:
    adapter = KohaAdapter(config(koha, secret="not-the-secret"), transport=koha.transport())

    checks = adapter.check()

    assert [(c.name, c.ok) for c in checks] == [("token", False), ("list patrons", False)]
    assert "403" in checks[0].detail
    assert koha.calls() == []


def test_check_fails_when_client_credentials_are_off_in_koha(koha: FakeKoha) -> None:
    koha.client_credentials_enabled = False
    adapter = KohaAdapter(config(koha), transport=koha.transport())

    checks = adapter.check()

    assert checks[0].name == "token" and not checks[0].ok
    assert "RESTOAuth2ClientCredentials" in checks[0].detail


def test_check_fails_when_the_client_may_not_read_patrons(koha: FakeKoha) -> None:
    koha.permissions = frozenset()
    koha.add_patron()
    adapter = KohaAdapter(config(koha), transport=koha.transport())

    checks = adapter.check()

    assert [(c.name, c.ok) for c in checks] == [("token", True), ("list patrons", False)]
    assert "403" in checks[1].detail


def test_a_koha_config_gets_the_koha_adapter(koha: FakeKoha) -> None:
    adapter = connector_for(config(koha))

    assert isinstance(adapter, KohaAdapter) and adapter.system == "koha"
    adapter.close()


def _token_requests(koha: FakeKoha) -> int:
    return sum(1 for r in koha.requests if r.path == "/api/v1/oauth/token")
