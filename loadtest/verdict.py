"""The run's verdict: 429s are counted apart (a limit doing its job is not an error), every
other unexpected answer is a failure, and the quitting hook turns failures or a p99 above
`--max-p99-ms` into a non-zero exit code."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from typing import Any

log = logging.getLogger("portcullis.loadtest")

rate_limited: Counter[str] = Counter()  # request name -> 429s


def judge(response: Any, name: str, *expected: int) -> bool:
    """Mark a catch_response response; True when it is one of `expected`."""
    status = response.status_code
    if status in expected:
        response.success()
        return True
    if status == 429:
        rate_limited[name] += 1
        response.success()
        return False
    body = (response.text or "")[:200] if status else str(response.error)
    response.failure(f"{status}: {body}")
    return False


def verdict(environment: Any) -> tuple[int, list[str]]:
    """(exit code, reasons) for the run that just ended."""
    reasons = []
    total = environment.stats.total
    if total.num_failures:
        reasons.append(f"{total.num_failures} unexpected errors of {total.num_requests} "
                       "requests")
    if not total.num_requests:
        # Set-up ate the whole run, or every user stopped early: nothing was measured, so
        # nothing can be said to have held.
        reasons.append("no request completed: nothing was measured")
    limit = float(getattr(environment.parsed_options, "max_p99_ms", 0) or 0)
    if limit and total.num_requests:
        p99 = total.get_response_time_percentile(0.99)
        if p99 > limit:
            reasons.append(f"p99 {p99:.0f} ms above --max-p99-ms {limit:.0f}")
    return (1 if reasons else 0), reasons


def on_quitting(environment: Any, **_: Any) -> None:
    if sum(rate_limited.values()):
        log.warning("rate limited (429, not counted as failures): %s", dict(rate_limited))
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        with open(f"{prefix}_ratelimited.csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["Name", "429 Count"])
            out.writerows(sorted(rate_limited.items()))
    if environment.process_exit_code:  # the set-up failed (2): that is the run's story
        return
    code, reasons = verdict(environment)
    if code:
        log.error("load test failed: %s", "; ".join(reasons))
        environment.process_exit_code = code
