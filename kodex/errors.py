"""Every error kodex raises on purpose, and the one table that maps each to an exit code and an HTTP status.

The command line (api.console) and the HTTP service (api.problems) both answer from `FAILURES`; an error that
is not in it is a bug, answered as exit 1 / HTTP 500 without its message. A message says what to fix and never
holds personal data: the record contract's problems name a line and a field, not a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only: this module imports nothing of kodex at run time
    from kodex.rules.loading import PolicyProblem
    from kodex.rules.validation import RecordProblem

__all__ = [
    "EXIT_OK",
    "FAILURES",
    "BrokenInvariant",
    "CheckFailed",
    "ConfigError",
    "Conflict",
    "Denied",
    "ExamplesFailed",
    "Failure",
    "InvalidExpression",
    "InvalidNote",
    "InvalidPeriod",
    "InvalidPolicy",
    "InvalidProofRequest",
    "InvalidRecords",
    "InvalidRequest",
    "KeyFileError",
    "LogBroken",
    "MasterKeyError",
    "NoAgreement",
    "NotAPolicyDocument",
    "NotAuthorised",
    "NotInLog",
    "NotInPolicy",
    "PolicyGap",
    "PolicyRefused",
    "PolicyTooDeep",
    "PolicyTooLarge",
    "PortInUse",
    "ProofInvalid",
    "PurgeFailed",
    "RunInProgress",
    "StoreNotReady",
    "SubjectNotFound",
    "TooManyFailedTokens",
    "Unauthenticated",
    "failure_for",
    "failure_types",
]

EXIT_OK = 0


# -- the policy ----------------------------------------------------------------------------------------------------


class InvalidPolicy(Exception):
    """The policy file breaks the policy language (rules.policy) or its semantic checks."""

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


class PolicyRefused(InvalidPolicy):
    """The text is not read as a policy at all (no line of it is a policy's problem): too large, too deep, not a map."""


class PolicyTooLarge(PolicyRefused):
    """The policy text is over rules.nesting.MAX_POLICY_BYTES: refused before it is parsed."""


class PolicyTooDeep(PolicyRefused):
    """The policy nests deeper than rules.nesting.MAX_POLICY_DEPTH (or holds too many aliases): refused unparsed."""


class NotAPolicyDocument(PolicyRefused):
    """The YAML document is not a mapping (a policy is `kodex: 1` and `libraries:`), e.g. a lone string."""


class InvalidExpression(ValueError):
    """A condition uses syntax or names outside the policy language."""

    def __init__(self, message: str, column: int = 0) -> None:
        super().__init__(message)
        self.column = column


class InvalidPeriod(ValueError):
    """A period is written as '<whole number> day(s)|month(s)|year(s)'."""


class PolicyGap(Exception):
    """A rule in force names a parameter that has no value in force on the day evaluated."""


class ExamplesFailed(Exception):
    """A rule's example did not give what it expects, or a rule lacks coverage."""


class NotInPolicy(Exception):
    """The library has no section in the active policy: kodex has no rules to apply to its records."""


# -- records and subjects ------------------------------------------------------------------------------------------


class InvalidRecords(Exception):
    """The input breaks the record contract; each problem names its line and field."""

    def __init__(self, problems: Sequence[RecordProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


class SubjectNotFound(Exception):
    """The subject asked for is not in the input or the store (or is ambiguous across libraries)."""


class InvalidRequest(Exception):
    """The request is well formed but breaks a rule of kodex or the policy; the message says which and what to do."""


class Conflict(Exception):
    """The request contradicts what is recorded already (e.g. an instruction's outcome given otherwise before)."""


class NotAuthorised(Exception):
    """The role acting has no authority for this under the policy; the message names who has."""


class NoAgreement(Exception):
    """No data-processing agreement is recorded for the library (GDPR Art. 28): it takes no personal data yet."""


# -- the installation ----------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """The configuration file or a KODEX_ variable is invalid; the message names the file or variable and the key."""


class CheckFailed(Exception):
    """`kodex connectors test`: the library system was not reached, refused the login or lacks a permission; the
    message names each step that failed and what to grant or fix."""


class StoreNotReady(Exception):
    """The database is missing, unreachable or not at the current schema; the message says what to run or set."""


class MasterKeyError(Exception):
    """The master key is missing, unreadable, malformed, too widely readable or not this store's key."""


class PortInUse(Exception):
    """The address cannot be listened on (another program holds it, or it is not this machine's)."""


class BrokenInvariant(Exception):
    """Something kodex itself guarantees did not hold (a bug, not bad input): the subject is left as it was."""


# -- the nightly job -----------------------------------------------------------------------------------------------


class RunInProgress(Exception):
    """Another run holds this library's lock."""


class PurgeFailed(Exception):
    """The recording's file was not deleted: its row stays, the purge is retried the next night; the message says why
    (never the location) and what the operator does."""


# -- the decision log ----------------------------------------------------------------------------------------------


class LogBroken(Exception):
    """`verify_log` found the log changed; the message lists what it found, first problem of each library."""


class ProofInvalid(Exception):
    """A proof does not prove what it claims; the message says which check failed."""


class NotInLog(LookupError):
    """No entry with that id, or no signed checkpoint covers it yet; the message says which and what to run."""


class InvalidProofRequest(ValueError):
    """A proof or root was asked of leaves or sizes the tree does not have."""


class InvalidNote(ValueError):
    """A saved checkpoint is not a c2sp.org/tlog-checkpoint signed note of this log, or its signature fails."""


class KeyFileError(ValueError):
    """A public-key file holds no Ed25519 public key in PEM form; the message says what was found."""


# -- who may call --------------------------------------------------------------------------------------------------


class Unauthenticated(Exception):
    """No bearer token, or one kodex does not know (or has revoked)."""


class Denied(Exception):
    """The token's role may not do this, or not in this library."""


class TooManyFailedTokens(Exception):
    """The client address sent too many unknown or revoked tokens; it waits `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many unknown tokens from this address; try again in {retry_after} s")
        self.retry_after = retry_after


# -- the one table -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    exit_code: int
    http_status: int
    title: str


FAILURES: dict[type[Exception], Failure] = {  # a subclass before its base: the first match wins
    PolicyTooLarge: Failure(3, 413, "policy too large"),
    PolicyTooDeep: Failure(3, 422, "policy nested too deeply"),
    PolicyRefused: Failure(3, 422, "not a policy"),
    InvalidPolicy: Failure(3, 422, "invalid policy"),
    NotInPolicy: Failure(3, 422, "library not in the policy"),
    InvalidRecords: Failure(4, 422, "invalid records"),
    ExamplesFailed: Failure(5, 422, "policy examples failed"),
    SubjectNotFound: Failure(6, 404, "not found"),
    NotInLog: Failure(6, 404, "not in the decision log"),
    ConfigError: Failure(7, 500, "invalid configuration"),
    StoreNotReady: Failure(7, 503, "store not ready"),
    MasterKeyError: Failure(7, 503, "master key problem"),
    PortInUse: Failure(7, 500, "cannot listen"),
    RunInProgress: Failure(8, 409, "run in progress"),
    LogBroken: Failure(9, 409, "the decision log does not verify"),
    ProofInvalid: Failure(9, 422, "the proof does not verify"),
    NotAuthorised: Failure(10, 403, "not authorised"),
    Denied: Failure(10, 403, "forbidden"),
    Unauthenticated: Failure(10, 401, "not authenticated"),
    NoAgreement: Failure(11, 409, "no data-processing agreement"),
    Conflict: Failure(12, 409, "conflict"),
    CheckFailed: Failure(13, 502, "the library system's check failed"),
    KeyFileError: Failure(2, 422, "not a public key file"),
    InvalidRequest: Failure(2, 422, "request refused"),
    TooManyFailedTokens: Failure(2, 429, "too many failed tokens"),
}


def failure_types() -> tuple[type[Exception], ...]:
    """Every error with a mapping (for handlers registered per type)."""
    return tuple(FAILURES)


def failure_for(error: BaseException) -> Failure | None:
    for kind, failure in FAILURES.items():
        if isinstance(error, kind):
            return failure
    return None
