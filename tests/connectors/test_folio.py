"""The FOLIO adapter against a fake FOLIO (tests/fakes/folio.py): what it calls, with which body, and what each of
FOLIO's answers becomes; `kodex connectors test` against the same fake."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from kodex.config import FolioConnector
from kodex.services.connectors import connector_for
from kodex.services.connectors.folio import ANONYMISED_LAST_NAME, BLOCK_PREFIX, PERMISSIONS, FolioAdapter
from kodex.services.instructions import Instruction
from tests.fakes.folio import FakeFolio
from tests.support import kodex

PERSONAL = {
    "lastName": "Nováková",
    "firstName": "Jana",
    "middleName": "Marie",
    "preferredFirstName": "Janička",
    "email": "jana.novakova@example.cz",
    "phone": "+420 377 111 222",
    "mobilePhone": "+420 777 111 222",
    "dateOfBirth": "1990-04-02T00:00:00.000+00:00",
    "addresses": [{"addressTypeId": str(uuid.uuid4()), "addressLine1": "Smetanovy sady 2", "city": "Plzeň"}],
    "preferredContactTypeId": "002",
}
PATRON_GROUP = "3684a786-6671-4268-8ed0-9db82ebca60b"


def instruction(action: str, subject_id: str, *, rule: str = "svkpk_block_after_overdue") -> Instruction:
    return Instruction(
        id=str(uuid.uuid4()), sequence=1, library="svkpk", action=action, subject_type="reader",
        subject_id=subject_id, decision_id=str(uuid.uuid4()), rule=rule, cite="Knihovní řád SVK PK čl. 9 odst. 2",
        what="…", created_at=datetime(2026, 3, 1, 2, 0, tzinfo=UTC), due_on=None, state="pending", overdue=False,
        attempts=0, outcome_code=None, outcome_detail=None, outcome_at=None,
    )  # fmt: skip


def config(url: str, fake: FakeFolio, password: str | None = None) -> FolioConnector:
    return FolioConnector(
        type="folio", url=url, tenant=fake.tenant, username=fake.username,
        password=SecretStr(password or fake.password), timeout_s=5,
    )  # fmt: skip


@pytest.fixture
def fake() -> FakeFolio:
    return FakeFolio()


@pytest.fixture
def url(fake: FakeFolio) -> Iterator[str]:
    with fake.running() as base:
        yield base


@pytest.fixture
def adapter(fake: FakeFolio, url: str) -> Iterator[FolioAdapter]:
    made = FolioAdapter(config(url, fake))
    yield made
    made.close()


def reader(fake: FakeFolio) -> str:
    return fake.add_user(
        username="jnovakova", barcode="31000123", externalSystemId="ext-778", patronGroup=PATRON_GROUP,
        departments=[], enrollmentDate="2020-01-02T00:00:00.000+00:00",
        expirationDate="2030-01-02T00:00:00.000+00:00", personal=dict(PERSONAL),
    )  # fmt: skip


# -- the capabilities ------------------------------------------------------------------------------------------


def test_the_config_names_the_folio_adapter_and_it_leaves_guardian_data_and_purges_to_the_work_list(
    fake: FakeFolio, url: str
) -> None:
    connector = connector_for(config(url, fake))
    assert isinstance(connector, FolioAdapter)
    assert [a for a in ("anonymise", "erase_loan_history", "block_services", "lift_block", "registration_expired",
                        "exclude", "erase_guardian_data", "purge") if connector.can(a)] == [
        "anonymise", "erase_loan_history", "block_services", "lift_block", "registration_expired", "exclude",
    ]  # fmt: skip
    connector.close()


def test_anonymise_strips_the_personal_block_and_detaches_the_loan_history(
    fake: FakeFolio, adapter: FolioAdapter
) -> None:
    user_id = reader(fake)
    loan = fake.add_loan(user_id, closed=True)
    carried = adapter.carry_out(instruction("anonymise", user_id))
    assert carried.state == "done"
    user = fake.users[user_id]
    assert user["personal"] == {"lastName": ANONYMISED_LAST_NAME, "preferredContactTypeId": "002"}
    assert not {"username", "barcode", "externalSystemId"} & user.keys()
    assert (user["patronGroup"], user["enrollmentDate"], user["active"]) == (
        PATRON_GROUP, "2020-01-02T00:00:00.000+00:00", True,
    )  # fmt: skip
    assert "userId" not in next(x for x in fake.loans if x["id"] == loan)
    assert [(r.method, r.path) for r in fake.requests if not r.path.startswith("/authn/")] == [
        ("GET", f"/users/{user_id}"),
        ("POST", f"/loan-anonymization/by-user/{user_id}"),
        ("PUT", f"/users/{user_id}"),
    ]
    put = fake.calls("PUT", "/users/")[0].body
    for value in ("Jana", "Nováková", "jana.novakova@example.cz", "Plzeň", "1990-04-02", "jnovakova", "31000123"):
        assert value not in str(put)


def test_erase_loan_history_detaches_closed_loans_and_leaves_open_loans_and_the_user(
    fake: FakeFolio, adapter: FolioAdapter
) -> None:
    user_id = reader(fake)
    closed, still_out = fake.add_loan(user_id, closed=True), fake.add_loan(user_id, closed=False)
    carried = adapter.carry_out(instruction("erase_loan_history", user_id))
    assert carried.state == "done"
    loans = {x["id"]: x for x in fake.loans}
    assert "userId" not in loans[closed] and loans[still_out]["userId"] == user_id
    assert fake.users[user_id]["personal"] == PERSONAL
    assert fake.calls("PUT") == []


@pytest.mark.parametrize("fees_in_200", [False, True], ids=["422_as_the_raml_says", "200_with_errors_as_the_code_does"])
@pytest.mark.parametrize("action", ["erase_loan_history", "anonymise"])
def test_a_loan_with_fees_and_fines_is_rejected_with_have_associated_fees_and_fines_and_the_user_stays(
    fake: FakeFolio, adapter: FolioAdapter, action: str, fees_in_200: bool
) -> None:
    fake.fees_in_200 = fees_in_200
    user_id = reader(fake)
    fake.add_loan(user_id, closed=True, with_fee=True)
    carried = adapter.carry_out(instruction(action, user_id))
    assert (carried.state, carried.code) == ("rejected", "haveAssociatedFeesAndFines")
    assert fake.users[user_id]["personal"] == PERSONAL and fake.calls("PUT") == []


def test_block_services_sets_a_manual_block_naming_kodex_and_the_rule_and_no_personal_data(
    fake: FakeFolio, adapter: FolioAdapter
) -> None:
    user_id = reader(fake)
    given = instruction("block_services", user_id, rule="svkpk_block_after_overdue")
    assert adapter.carry_out(given).state == "done"
    posted = fake.calls("POST", "/manualblocks")[0].body
    assert {k: posted[k] for k in ("borrowing", "renewals", "requests", "userId", "type")} == {
        "borrowing": True, "renewals": True, "requests": True, "userId": user_id, "type": "Manual",
    }  # fmt: skip
    assert posted["desc"].startswith("kodex") and "svkpk_block_after_overdue" in posted["desc"]
    assert given.id in posted["staffInformation"]
    for value in ("Jana", "Nováková", "jnovakova", "31000123"):
        assert value not in str(posted)
    assert [b["userId"] for b in fake.manualblocks.values()] == [user_id]


def test_block_services_again_sets_no_second_block(fake: FakeFolio, adapter: FolioAdapter) -> None:
    user_id = reader(fake)
    assert adapter.carry_out(instruction("block_services", user_id)).state == "done"
    assert adapter.carry_out(instruction("block_services", user_id)).state == "done"
    assert len(fake.manualblocks) == 1


def test_lift_block_deletes_kodex_service_blocks_and_leaves_the_library_own_and_an_exclusion(
    fake: FakeFolio, adapter: FolioAdapter
) -> None:
    user_id = reader(fake)
    own = str(uuid.uuid4())
    fake.manualblocks[own] = {"id": own, "userId": user_id, "desc": "Lost card", "borrowing": True}
    adapter.carry_out(instruction("block_services", user_id))
    adapter.carry_out(instruction("exclude", user_id, rule="svkpk_exclusion"))
    kodex_block = next(b["id"] for b in fake.manualblocks.values() if b["desc"].startswith(BLOCK_PREFIX))
    carried = adapter.carry_out(instruction("lift_block", user_id))
    assert carried.state == "done"
    assert [(r.method, r.path) for r in fake.calls("DELETE")] == [("DELETE", f"/manualblocks/{kodex_block}")]
    assert sorted(b["desc"] for b in fake.manualblocks.values()) == [
        "Lost card", "kodex: excluded from services under rule svkpk_exclusion",
    ]  # fmt: skip


def test_registration_expired_makes_the_user_inactive_and_expired_now(fake: FakeFolio, adapter: FolioAdapter) -> None:
    user_id = reader(fake)
    before = datetime.now(UTC)
    assert adapter.carry_out(instruction("registration_expired", user_id)).state == "done"
    user = fake.users[user_id]
    assert user["active"] is False
    assert before <= datetime.fromisoformat(user["expirationDate"]) <= datetime.now(UTC)
    assert user["personal"] == PERSONAL


# -- FOLIO's failure answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["anonymise", "erase_loan_history", "block_services", "lift_block",
                                    "registration_expired", "exclude"])  # fmt: skip
def test_an_unknown_user_is_rejected_not_found_and_nothing_is_changed(
    fake: FakeFolio, adapter: FolioAdapter, action: str
) -> None:
    carried = adapter.carry_out(instruction(action, str(uuid.uuid4())))
    assert (carried.state, carried.code) == ("rejected", "not_found")
    assert [r.method for r in fake.requests if not r.path.startswith("/authn/")] == ["GET"]


def test_a_subject_id_that_is_not_a_folio_uuid_is_rejected_before_any_call(
    fake: FakeFolio, adapter: FolioAdapter
) -> None:
    carried = adapter.carry_out(instruction("anonymise", "../users?query=cql.allRecords=1"))
    assert (carried.state, carried.code) == ("rejected", "not_a_folio_id")
    assert fake.requests == []


def test_a_refusal_without_a_folio_code_is_rejected_with_its_status(fake: FakeFolio, adapter: FolioAdapter) -> None:
    user_id = reader(fake)
    fake.fail("PUT", "/users/", 422)  # the fake's failure body is text: the code falls back to the status
    carried = adapter.carry_out(instruction("registration_expired", user_id))
    assert (carried.state, carried.code) == ("rejected", "http_422")


@pytest.mark.parametrize(("status", "headers", "retry_after"), [(500, {}, None), (503, {}, None),
                                                               (429, {"Retry-After": "30"}, 30.0)])  # fmt: skip
def test_a_server_error_or_too_many_requests_is_retried_later(
    fake: FakeFolio, adapter: FolioAdapter, status: int, headers: dict[str, str], retry_after: float | None
) -> None:
    user_id = reader(fake)
    fake.fail("PUT", "/users/", status, headers)
    carried = adapter.carry_out(instruction("registration_expired", user_id))
    assert (carried.state, carried.code, carried.retry_after) == ("retry", f"http_{status}", retry_after)
    assert fake.users[user_id]["active"] is True


def test_an_unreachable_folio_is_retried_later(fake: FakeFolio) -> None:
    with fake.running() as base:
        pass  # stopped: nothing listens there now
    adapter = FolioAdapter(config(base, fake))
    carried = adapter.carry_out(instruction("anonymise", str(uuid.uuid4())))
    adapter.close()
    assert (carried.state, carried.code) == ("retry", "unreachable")


def test_an_expired_token_is_renewed_by_one_login_and_the_call_repeated(fake: FakeFolio, adapter: FolioAdapter) -> None:
    user_id = reader(fake)
    adapter.carry_out(instruction("block_services", user_id))
    fake.expire_tokens()
    assert adapter.carry_out(instruction("registration_expired", user_id)).state == "done"
    assert len(fake.calls("POST", "/authn/")) == 2
    assert fake.users[user_id]["active"] is False


def test_a_missing_permission_is_failed_not_authorised(fake: FakeFolio, adapter: FolioAdapter) -> None:
    user_id = reader(fake)
    fake.permissions.discard("users.item.put")
    carried = adapter.carry_out(instruction("anonymise", user_id))
    assert (carried.state, carried.code) == ("failed", "not_authorised")
    assert "PUT /users/{id}" in (carried.detail or "") and "403" in (carried.detail or "")


def test_a_wrong_password_is_failed_not_authorised_and_nothing_is_called(fake: FakeFolio, url: str) -> None:
    user_id = reader(fake)
    adapter = FolioAdapter(config(url, fake, password="wrong-password"))
    carried = adapter.carry_out(instruction("anonymise", user_id))
    adapter.close()
    assert (carried.state, carried.code) == ("failed", "not_authorised")
    assert [r.path for r in fake.requests] == ["/authn/login-with-expiry"]


def test_an_older_folio_is_logged_in_to_by_the_classic_login(fake: FakeFolio, adapter: FolioAdapter) -> None:
    fake.classic_login_only = True
    user_id = reader(fake)
    assert adapter.carry_out(instruction("registration_expired", user_id)).state == "done"
    assert [r.path for r in fake.calls("POST", "/authn/")] == ["/authn/login-with-expiry", "/authn/login"]


def test_every_call_names_the_tenant_and_sends_the_token_in_its_header_only(
    fake: FakeFolio, adapter: FolioAdapter
) -> None:
    user_id = reader(fake)
    adapter.carry_out(instruction("anonymise", user_id))
    assert {r.headers.get("x-okapi-tenant") for r in fake.requests} == {"diku"}
    calls = [r for r in fake.requests if not r.path.startswith("/authn/")]
    assert calls and all(r.headers.get("x-okapi-token") in fake.tokens for r in calls)
    assert all("cookie" not in r.headers for r in calls)


def test_no_password_nor_token_in_any_outcome_or_log_line(
    fake: FakeFolio, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user_id = reader(fake)
    outcomes = []
    wrong = FolioAdapter(config(url, fake, password="Wr0ng-Secret-Passw0rd"))
    outcomes.append(wrong.carry_out(instruction("anonymise", user_id)))
    outcomes += [check.detail for check in wrong.check()]
    wrong.close()
    adapter = FolioAdapter(config(url, fake))
    fake.fail("PUT", "/users/", 500)
    outcomes.append(adapter.carry_out(instruction("registration_expired", user_id)))
    fake.expire_tokens()
    fake.permissions.discard("manualblocks.item.post")
    outcomes.append(adapter.carry_out(instruction("block_services", user_id)))
    outcomes += [check.detail for check in adapter.check()]
    adapter.close()
    issued = [r.headers["x-okapi-token"] for r in fake.requests if "x-okapi-token" in r.headers]
    assert issued and caplog.records
    said = caplog.text + "\n".join(map(str, outcomes))
    for secret in (fake.password, "Wr0ng-Secret-Passw0rd", *issued):
        assert secret not in said


# -- checking the connection --------------------------------------------------------------------------------------


def test_check_logs_in_reads_and_finds_every_permission_and_changes_nothing(
    fake: FakeFolio, adapter: FolioAdapter
) -> None:
    checks = adapter.check()
    assert all(check.ok for check in checks), checks
    assert [c.name for c in checks] == ["login", "read users", "read manual blocks", *PERMISSIONS]
    assert {r.method for r in fake.requests if not r.path.startswith("/authn/")} == {"GET"}


def test_check_names_the_missing_permission(fake: FakeFolio, adapter: FolioAdapter) -> None:
    fake.permissions.discard("circulation.loans.collection.anonymize.user.post")
    failed = [check for check in adapter.check() if not check.ok]
    assert [check.name for check in failed] == ["circulation.loans.collection.anonymize.user.post"]


def write_connector(kodex_env: dict[str, str], url: str, fake: FakeFolio, password: str) -> None:
    config_file = Path(kodex_env["KODEX_HOME"]) / "kodex.toml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    with config_file.open("a") as written:
        written.write(f'\n[connectors.svkpk]\ntype = "folio"\nurl = "{url}"\ntenant = "{fake.tenant}"\n'
                      f'username = "{fake.username}"\npassword = "{password}"\n')  # fmt: skip


def test_connectors_test_passes_against_folio(kodex_env: dict[str, str], fake: FakeFolio, url: str) -> None:
    write_connector(kodex_env, url, fake, fake.password)
    result = kodex("connectors", "test", "--library", "svkpk")
    assert result.exit_code == 0, result.output
    assert "✓ login" in result.output and "✓ users.item.put" in result.output and "✗" not in result.output
    assert {r.method for r in fake.requests if not r.path.startswith("/authn/")} == {"GET"}


def test_connectors_test_fails_with_a_wrong_password_and_never_prints_it(
    kodex_env: dict[str, str], fake: FakeFolio, url: str
) -> None:
    write_connector(kodex_env, url, fake, "Wr0ng-Secret-Passw0rd")
    result = kodex("connectors", "test", "--library", "svkpk")
    assert result.exit_code == 13, result.output
    assert "✗ login" in result.output
    assert "Wr0ng-Secret-Passw0rd" not in result.output + (result.stderr or "")


def test_connectors_test_without_a_connector_says_what_to_write(kodex_env: dict[str, str]) -> None:
    result = kodex("connectors", "test", "--library", "svkpk")
    assert result.exit_code == 7, result.output
    assert "[connectors.svkpk]" in result.output and 'type = "folio"' in result.output


def test_an_answer_folio_does_not_describe_is_failed_with_its_status(fake: FakeFolio, adapter: FolioAdapter) -> None:
    user_id = reader(fake)
    fake.fail("PUT", "/users/", 302, {"Location": "https://sso.example.cz/"})
    carried = adapter.carry_out(instruction("registration_expired", user_id))
    assert (carried.state, carried.code) == ("failed", "http_302")
