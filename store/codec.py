"""Records of the contract to rows of the store and back.

A reader's personal data, guardian data, birth date and legal-hold reason are
sealed under the reader's data key; everything else (category, kind, dates,
counts, the birth year, whether a guardian is recorded) is kept in clear in
`facts`, which is what statistics need and what survives anonymisation.
Associated data binds every blob to its library and record id.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from kodex.rules.decision import json_value
from kodex.store.crypto import MasterKey, new_data_key, seal, unseal

__all__ = [
    "SEALED_KEYS",
    "Sealed",
    "canonical",
    "contract_json",
    "exception_aad",
    "exception_text",
    "hold_reason",
    "new_pseudonym",
    "reader_aad",
    "reader_record",
    "recording_hold_aad",
    "seal_hold_reason",
    "split_reader",
]

SEALED_KEYS = ("personal", "guardian", "birth_date")


def contract_json(record: BaseModel) -> dict[str, Any]:
    """A record as its contract JSON (dates as ISO text, amounts as numbers)."""
    return {k: json_value(v) for k, v in record.model_dump(by_alias=True).items()}


_string = json.encoder.encode_basestring  # a JSON string as canonical writes it (ensure_ascii off)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)  # built once: it is hot


def canonical(record: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same bytes for the same content (hashed, signed, bound as AAD)."""
    return _CANONICAL.encode(record).encode()


def new_pseudonym() -> str:
    """Random, not derived from anything about the subject (so it reveals nothing and cannot be recomputed)."""
    return secrets.token_hex(16)


def reader_aad(library: str, record_id: str) -> bytes:
    """canonical({"library": library, "reader": record_id}), spelled out: it is built for every reader a run loads."""
    return f'{{"library":{_string(library)},"reader":{_string(record_id)}}}'.encode()


class Sealed:
    """A reader's sealed personal data and its wrapped data key."""

    __slots__ = ("blob", "wrapped_key")

    def __init__(self, wrapped_key: bytes, blob: bytes) -> None:
        self.wrapped_key = wrapped_key
        self.blob = blob


def split_reader(record: dict[str, Any], master: MasterKey) -> tuple[dict[str, Any], Sealed]:
    """A reader record (JSON form) as clear facts and sealed personal data."""
    facts = {k: v for k, v in record.items() if k not in SEALED_KEYS and k != "legal_hold"}
    secret: dict[str, Any] = {k: record[k] for k in SEALED_KEYS if record.get(k) is not None}
    birth = record.get("birth_date")
    facts["birth_year"] = int(birth[:4]) if birth else None
    facts["has_guardian"] = bool(record.get("guardian") and any(record["guardian"].values()))
    hold = record.get("legal_hold")
    if hold is not None:
        facts["legal_hold"] = {"until": hold.get("until")}
        secret["legal_hold_reason"] = hold.get("reason")
    aad = reader_aad(record["library"], record["id"])
    data_key = new_data_key()
    return facts, Sealed(master.wrap(data_key, aad), seal(data_key, canonical(secret), aad))


def reader_record(
    facts: dict[str, Any], wrapped_key: bytes | None, blob: bytes | None, master: MasterKey
) -> dict[str, Any]:
    """The reader record (JSON form) again: facts with the personal data unsealed (none once anonymised)."""
    record = {k: v for k, v in facts.items() if k not in {"birth_year", "has_guardian", "legal_hold"}}
    if wrapped_key is None or blob is None:
        return record
    aad = reader_aad(facts["library"], facts["id"])
    secret = json.loads(unseal(master.unwrap(wrapped_key, aad), blob, aad))
    reason = secret.pop("legal_hold_reason", None)
    record.update(secret)
    if facts.get("legal_hold") is not None:
        record["legal_hold"] = {"reason": reason, "until": facts["legal_hold"]["until"]}
    return record


def recording_hold_aad(library: str, recording_id: str) -> bytes:
    """What a recording's own legal-hold reason is wrapped for: that recording's hold, nothing else."""
    return f"recording/{library}/{recording_id}/legal_hold".encode()


def seal_hold_reason(master: MasterKey, library: str, recording_id: str, reason: str) -> bytes:
    """A recording's legal-hold reason (it may name a person: a police case, a suspect), wrapped by the master key."""
    return master.wrap(reason.encode(), recording_hold_aad(library, recording_id))


def hold_reason(master: MasterKey, row: Any) -> str:
    """A stored recording's own legal-hold reason, unwrapped."""
    text: bytes = master.unwrap(row.legal_hold_reason, recording_hold_aad(row.library, row.id))
    return text.decode()


def exception_aad(library: str, exception_id: str, field: str) -> bytes:
    """What a grantor's name or a reason is wrapped for: that field of that exception, nothing else."""
    return f"exception/{library}/{exception_id}/{field}".encode()


def exception_text(master: MasterKey, row: Any, field: str) -> str:
    """A stored exception's grantor (`granted_by`) or `reason`, unwrapped."""
    text: bytes = master.unwrap(row._mapping[field], exception_aad(row.library, row.id, field))
    return text.decode()
