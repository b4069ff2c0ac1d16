"""The one place that maps domain errors to exit codes and HTTP statuses."""

from __future__ import annotations

from dataclasses import dataclass

from kodex.api.auth import Denied, Unauthenticated
from kodex.api.serving import PortInUse
from kodex.api.throttle import TooManyFailedTokens
from kodex.audit.keys import KeyFileError
from kodex.audit.log import NotInLog
from kodex.audit.verify import LogBroken, ProofInvalid
from kodex.retention.locking import RunInProgress
from kodex.rules.loading import InvalidPolicy, PolicyRefused, PolicyTooDeep, PolicyTooLarge
from kodex.services.config import ConfigError
from kodex.services.errors import InvalidRequest
from kodex.services.evaluation import InvalidRecords, SubjectNotFound
from kodex.services.rule_exceptions import NotAuthorised
from kodex.services.tenants import NoAgreement, NotInPolicy
from kodex.store.crypto import MasterKeyError
from kodex.store.database import StoreNotReady

__all__ = ["EXIT_OK", "ExamplesFailed", "Failure", "failure_for", "failure_types"]

EXIT_OK = 0


class ExamplesFailed(Exception):
    """A rule's example did not give what it expects, or a rule lacks coverage."""


@dataclass(frozen=True)
class Failure:
    exit_code: int
    http_status: int
    title: str


_FAILURES: dict[type[Exception], Failure] = {  # a subclass before its base: the first match wins
    PolicyTooLarge: Failure(3, 413, "policy too large"),
    PolicyTooDeep: Failure(3, 422, "policy nested too deeply"),
    PolicyRefused: Failure(3, 422, "not a policy"),
    InvalidPolicy: Failure(3, 422, "invalid policy"),
    InvalidRecords: Failure(4, 422, "invalid records"),
    ExamplesFailed: Failure(5, 422, "policy examples failed"),
    SubjectNotFound: Failure(6, 404, "not found"),
    ConfigError: Failure(7, 500, "invalid configuration"),
    StoreNotReady: Failure(7, 503, "store not ready"),
    MasterKeyError: Failure(7, 503, "master key problem"),
    RunInProgress: Failure(8, 409, "run in progress"),
    LogBroken: Failure(9, 409, "the decision log does not verify"),
    ProofInvalid: Failure(9, 422, "the proof does not verify"),
    NotInLog: Failure(6, 404, "not in the decision log"),
    KeyFileError: Failure(2, 422, "not a public key file"),
    NotAuthorised: Failure(10, 403, "not authorised"),
    NoAgreement: Failure(11, 409, "no data-processing agreement"),
    NotInPolicy: Failure(3, 422, "library not in the policy"),
    InvalidRequest: Failure(2, 422, "request refused"),
    Unauthenticated: Failure(2, 401, "not authenticated"),
    Denied: Failure(10, 403, "forbidden"),
    TooManyFailedTokens: Failure(2, 429, "too many failed tokens"),
    PortInUse: Failure(7, 500, "cannot listen"),
}


def failure_types() -> tuple[type[Exception], ...]:
    """Every domain error with a mapping (for handlers registered per type)."""
    return tuple(_FAILURES)


def failure_for(error: Exception) -> Failure | None:
    for kind, failure in _FAILURES.items():
        if isinstance(error, kind):
            return failure
    return None
