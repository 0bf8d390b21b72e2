"""The checks over item views (from domain records): one item after the other."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from connector.core.checks.config import CheckConfig, Verdicts
from connector.core.checks.outcome import Finding, Problem
from connector.core.checks.parties import AddressScreening
from connector.core.checks.subject import ItemView, PartyView, view_of_item
from connector.core.model import PostalItem

__all__ = ["check_views", "item_findings", "line_problems", "party_problem", "run_checks"]


def line_problems(
    verdicts: Verdicts, category: str, destination: str, description: str, code: str | None
) -> list[Problem]:
    """Problems of one content line, in the order every reader reports them."""
    found: list[Problem] = []
    if verdicts.hs and code is not None:
        problem = verdicts.code(code)
        if problem is not None:
            found.append(problem)
    if verdicts.descriptions:
        vague = verdicts.vague(description)
        if vague is not None and not verdicts.skips_vagueness(category):
            found.append(vague)
        if code is not None:
            contradiction = verdicts.chapter(description, code)
            if contradiction is not None:
                found.append(contradiction)
    if verdicts.prohibited and verdicts.may_be_article(description, code):
        found.extend(verdicts.articles(destination, description, code))
    return found


def party_problem(verdicts: Verdicts, party: PartyView) -> Problem | None:
    """The problem of one party: its name first, else its address."""
    screening = verdicts.config.screening
    match = verdicts.name(party.name)
    if match is not None:
        return screening.name_problem(party, match)
    if screening.settings.address_screening is not AddressScreening.ALL:
        return None
    address = screening.parties.match_address(party.address_text)
    return screening.address_problem(party, address) if address is not None else None


def _finding(item: ItemView, at: str, problem: Problem) -> Finding:
    return Finding(
        item.index,
        item.item_id,
        problem.severity,
        problem.code,
        f"{at}/{problem.path}",
        problem.message,
        problem.detail,
    )


def item_findings(verdicts: Verdicts, item: ItemView) -> Iterator[Finding]:
    """Findings on one item, in the order every reader reports them."""
    for n, line in enumerate(item.lines, start=1):
        at = f"{item.path}/Contents/Line[{n}]"
        found = line_problems(
            verdicts, item.category, item.destination, line.description, line.hs_code
        )
        for problem in found:
            yield _finding(item, at, problem)
    if verdicts.parties:
        for party in (item.sender, item.addressee):
            party_found = party_problem(verdicts, party)
            if party_found is not None:
                yield _finding(item, item.path, party_found)


def check_views(items: Iterable[ItemView], config: CheckConfig) -> tuple[Finding, ...]:
    """Findings of the enabled checks on item views, in item order."""
    verdicts = Verdicts(config)
    return tuple(finding for item in items for finding in item_findings(verdicts, item))


def run_checks(items: Iterable[tuple[int, PostalItem]], config: CheckConfig) -> tuple[Finding, ...]:
    """Findings on domain records, each given with its 0-based index in its batch."""
    return check_views((view_of_item(index, item) for index, item in items), config)
