"""The policy: the active one and its revision; validate a candidate; a candidate's dry-run diff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from kodex.api.auth import Principal, for_library, for_service
from kodex.api.heavy import HeavySlot
from kodex.api.routes.common import PROBLEMS, ruleset, workspace
from kodex.api.schemas import LibraryPolicy, PolicyDiffOut, PolicyOut, PolicyValidation
from kodex.errors import InvalidPolicy, InvalidRequest, PolicyRefused
from kodex.rules.examples import run_examples
from kodex.rules.loading import parse_policy
from kodex.rules.ruleset import Ruleset
from kodex.rules.values import CalendarDay
from kodex.services.policy_diff import policy_diff

router = APIRouter(tags=["policy"], responses=PROBLEMS)

_YAML = {
    "requestBody": {
        "required": True,
        "description": "A candidate policy, as policies.yaml is written.",
        "content": {"application/yaml": {"schema": {"type": "object", "description": "policies.yaml's language"}}},
    }
}


@router.get("/policy", response_model=PolicyOut)
def active(request: Request, _: Annotated[Principal, Depends(for_service("policy.read"))]) -> PolicyOut:
    """The active policy's revision and, per library, its rules with their articles."""
    rules = ruleset(request)
    return PolicyOut(
        revision=rules.revision,
        libraries=[
            LibraryPolicy(
                id=compiled.id,
                name=compiled.library.name,
                regulation=compiled.library.regulation.title,
                rules=[_rule(rule.rule) for rule in compiled.rules],
            )
            for compiled in rules.libraries.values()
        ],
    )


@router.post("/policy/validation", response_model=PolicyValidation, openapi_extra=_YAML)
async def validate(
    request: Request, _: Annotated[Principal, Depends(for_service("policy.validate"))], slot: HeavySlot
) -> PolicyValidation:
    """Validate a candidate policy: structure and meaning (each problem with line and column), then its examples."""
    text = await _text(request)
    try:
        candidate = await run_in_threadpool(_compile, text)
    except PolicyRefused:
        raise  # not read as a policy at all (too large, too deep, not a mapping): 413 or 422, not valid: false
    except InvalidPolicy as invalid:
        problems = [{"line": p.line, "column": p.column, "message": p.message} for p in invalid.problems]
        return PolicyValidation(valid=False, revision=None, problems=problems, examples_failed=[])
    coverage = await run_in_threadpool(run_examples, candidate)
    failed = [f"{c.rule}: {r.name}: expected {r.expected}, got {r.got}" for c in coverage for r in c.failed]
    failed += [f"{c.rule}: {gap}" for c in coverage for gap in c.gaps]
    return PolicyValidation(valid=not failed, revision=candidate.revision, problems=[], examples_failed=failed)


@router.post("/libraries/{library}/policy/diff", response_model=PolicyDiffOut, openapi_extra=_YAML)
async def diff(
    library: str,
    request: Request,
    _: Annotated[Principal, Depends(for_library("policy.diff"))],
    slot: HeavySlot,
    as_of: Annotated[CalendarDay | None, Query(description="Day or moment (default: now).")] = None,
    limit: Annotated[int, Query(ge=0, le=10_000, description="Changes listed (all are counted).")] = 1000,
) -> PolicyDiffOut:
    """Which decisions would change for the library's current readers and recordings if the candidate were adopted."""
    text = await _text(request)
    candidate = await run_in_threadpool(_compile, text)
    rules, work = ruleset(request), workspace(request)
    when = as_of if as_of is not None else datetime.now(rules.library(library).zone)
    found = await run_in_threadpool(
        lambda: policy_diff(work.engine, work.master, rules, candidate, library, when, limit=limit)
    )
    return PolicyDiffOut(
        library=found.library, as_of=found.as_of, active_revision=found.active_revision,
        candidate_revision=found.candidate_revision, subjects=found.subjects, changed_subjects=found.changed_subjects,
        counts=[{"rule": r, "before": b, "after": a, "subjects": n} for (r, b, a), n in sorted(found.counts.items())],
        changes=[vars(change) for change in found.changes],
    )  # fmt: skip


async def _text(request: Request) -> str:
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8 text; send the policy's YAML") from None
    if not text.strip():
        raise InvalidRequest("the body is empty; send a candidate policy's YAML")
    return text


def _compile(text: str) -> Ruleset:
    return Ruleset(parse_policy(text, "<candidate>"))


def _rule(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.id, "title": rule.title, "cite": rule.cite, "subject": rule.subject, "effect": rule.effect.value,
        "action": rule.action, "effective_from": rule.effective_from.isoformat(),
        "effective_to": rule.effective_to.isoformat() if rule.effective_to else None,
        "exception_by": list(rule.exception_by), "decided_by": rule.decided_by,
    }  # fmt: skip
