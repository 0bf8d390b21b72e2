"""Data-quality and compliance checks on accepted items, before they are forwarded.

The checks are pure functions over parsed items. Their data (HS nomenclature, term lists,
article rules, the denied-party list) arrives already parsed and indexed in a
:class:`CheckConfig`, built once by :mod:`connector.checks_loader` (the core reads no files).
A run memoizes verdicts by value within itself (descriptions, codes and names repeat a lot
in a batch), so the cost follows the distinct values, not the items.

=========================  =======  =================================================
code                       default  fault
=========================  =======  =================================================
hs_code_unknown            error    the first 6 digits of the HS code are no subheading
description_vague          warning  the description is only a generic term ("gift")
description_contradicts_   warning  the description's head noun belongs to another
hs                                  HS chapter than the declared code
article_prohibited         error    a rule for the destination forbids the article
article_restricted         warning  a rule for the destination restricts the article
party_denied               error    sender or addressee matches the denied-party list
party_possible_match       warning  ... with a score between review and reject
party_address_match        warning  the address matches a listed address
=========================  =======  =================================================

Error findings reject their item in the acknowledgement (:func:`merge_into_report`);
warnings go with the accepted item to Customs.
"""

from __future__ import annotations

from connector.core.checks.config import CheckConfig
from connector.core.checks.outcome import (
    FINDING_CODES,
    CheckName,
    Finding,
    Severity,
    merge_into_report,
    parse_check_names,
)
from connector.core.checks.records import check_views, run_checks
from connector.core.checks.scan import check_report

__all__ = [
    "FINDING_CODES",
    "CheckConfig",
    "CheckName",
    "Finding",
    "Severity",
    "check_report",
    "check_views",
    "merge_into_report",
    "parse_check_names",
    "run_checks",
]
