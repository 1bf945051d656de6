#!/usr/bin/env python3
"""Run the scim2-tester compliance checks against a SCIM server.

Usage:
    run_tester.py BASE_URL TOKEN [--include-tag T ...] [--exclude-tag T ...]
                  [--resource-type NAME ...] [--verbose] [--timeout S]

BASE_URL is the SCIM root, e.g. http://127.0.0.1:18765/scim/v2 (the checks
request BASE_URL/ServiceProviderConfig, BASE_URL/Users, ...). TOKEN is sent as
`Authorization: Bearer TOKEN`; pass "" to send no Authorization header.

Prints one line per check result:  PASS|FAIL|SKIP <check name>: <reason>
Exit status: 0 if nothing failed, 1 if at least one check failed,
2 if the tester itself crashed.
"""

import argparse
import sys
import time

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status
from scim2_tester import check_server
from scim2_tester import get_all_available_tags

PASS_STATUSES = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}
FAIL_STATUSES = {Status.ERROR, Status.CRITICAL}


def one_line(text: object) -> str:
    return " | ".join(str(text).split("\n")).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("--include-tag", action="append", default=None,
                        help="only run checks with this tag (repeatable); "
                        f"known tags: {', '.join(get_all_available_tags())}")
    parser.add_argument("--exclude-tag", action="append", default=None,
                        help="skip checks with this tag (repeatable)")
    parser.add_argument("--resource-type", action="append", default=None,
                        help="only test these resource types, e.g. User")
    parser.add_argument("--deviation-is-failure", action="store_true",
                        help="count DEVIATION (SHOULD violations) as FAIL "
                        "instead of PASS")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print the debugging data of failed checks")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    # A trailing slash makes httpx2 join relative endpoints under the base path.
    base_url = args.base_url.rstrip("/") + "/"

    started = time.monotonic()
    try:
        with httpx2.Client(base_url=base_url, headers=headers,
                           timeout=args.timeout) as http:
            client = SyncSCIMClient(http)
            results = check_server(
                client,
                include_tags=set(args.include_tag) if args.include_tag else None,
                exclude_tags=set(args.exclude_tag) if args.exclude_tag else None,
                resource_types=args.resource_type,
            )
    except Exception as exc:  # the tester itself crashed
        print(f"FAIL scim2-tester: crashed: {one_line(repr(exc))}")
        return 2
    elapsed = time.monotonic() - started

    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for result in results:
        if result.status == Status.SKIPPED:
            verdict = "SKIP"
        elif result.status in PASS_STATUSES or (
            result.status == Status.DEVIATION and not args.deviation_is_failure
        ):
            verdict = "PASS"
        else:
            verdict = "FAIL"
        counts[verdict] += 1

        name = result.title or "unnamed"
        if result.resource_type:
            name = f"{name}[{result.resource_type}]"
        reason = one_line(result.reason or result.status.name)
        if result.status not in PASS_STATUSES | FAIL_STATUSES | {Status.SKIPPED}:
            reason = f"({result.status.name}) {reason}"
        print(f"{verdict} {name}: {reason}")
        if args.verbose and verdict == "FAIL" and result.data is not None:
            print(f"    data: {one_line(result.data)}")

    print(f"# {counts['PASS']} passed, {counts['FAIL']} failed, "
          f"{counts['SKIP']} skipped in {elapsed:.1f}s", file=sys.stderr)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
