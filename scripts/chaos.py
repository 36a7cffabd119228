"""`make chaos`: the full fault-injection run; prints the table and writes docs/reliability.md.

Usage: python scripts/chaos.py [--contacts 700] [--race 500] [--deadline 900]
                              [--report docs/reliability.md]
Needs root on a machine whose PostgreSQL and Redis it may restart (CI's, or a developer's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drip.testing.chaos import Plan, Run

HERE = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=700, help="subscribers, 3 deliveries each")
    parser.add_argument("--race", type=int, default=500, help="subscribers in the unsubscribe race")
    parser.add_argument(
        "--deadline", type=float, default=900.0, help="seconds the whole run may take"
    )
    parser.add_argument("--report", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args()
    plan = Plan(
        contacts=args.contacts,
        race_contacts=args.race,
        deadline=args.deadline,
        schema=HERE.parent / "shared" / "sendgrid" / "mail_send.schema.json",
    )
    verdict = Run(plan).execute()
    command = f"python scripts/chaos.py --contacts {args.contacts} --race {args.race}"
    table = verdict.table(command)
    print(table)
    if args.report:
        text = args.report.read_text() if args.report.exists() else ""
        marker = "<!-- chaos-table -->"
        head = text.split(marker)[0] if marker in text else text
        args.report.write_text(head + marker + "\n" + table + "\n")
    print("PASS" if verdict.passed else "FAIL")
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
