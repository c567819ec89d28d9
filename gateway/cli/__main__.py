"""python -m gateway.cli apply -f routes/suppression.yaml [--dry-run] [--prune-all]
python -m gateway.cli get [--json]
python -m gateway.cli delete NAME

Common options: --url (env PORTCULLIS_CONTROL_URL, default http://127.0.0.1:8001),
--token (env PORTCULLIS_ADMIN_TOKEN), --actor (recorded in the audit; default cli:$USER)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from gateway.cli import commands
from gateway.cli.admin import Admin, AdminError
from gateway.cli.routefile import RouteFileError


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("PORTCULLIS_CONTROL_URL",
                                                        "http://127.0.0.1:8001"))
    common.add_argument("--token", default=os.environ.get("PORTCULLIS_ADMIN_TOKEN"))
    common.add_argument("--actor", default=f"cli:{os.environ.get('USER', 'unknown')}")
    top = argparse.ArgumentParser(prog="python -m gateway.cli",
                                  description="Portcullis route registry")
    sub = top.add_subparsers(dest="command", required=True)
    apply = sub.add_parser("apply", parents=[common],
                           help="make the registry match a routes file")
    apply.add_argument("-f", "--file", required=True, type=Path)
    apply.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    apply.add_argument("--prune-all", action="store_true",
                       help="delete every route not in the file, whatever its owner")
    get = sub.add_parser("get", parents=[common], help="print the route table")
    get.add_argument("--json", action="store_true", help="the table as JSON")
    delete = sub.add_parser("delete", parents=[common], help="delete one route")
    delete.add_argument("name")
    return top


async def run(args: argparse.Namespace) -> None:
    admin = Admin.connect(args.url, args.token, args.actor)
    try:
        if args.command == "apply":
            await commands.apply(admin, args.file, os.environ, sys.stdout,
                                 dry_run=args.dry_run, prune_all=args.prune_all)
        elif args.command == "get" and args.json:
            version, routes = await admin.table()
            print(json.dumps({"version": version, "routes": routes}, indent=2))
        elif args.command == "get":
            await commands.get(admin, sys.stdout)
        else:
            await commands.delete(admin, args.name, sys.stdout)
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.token:
        print("error: no admin token (--token, or PORTCULLIS_ADMIN_TOKEN)", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(args))
    except RouteFileError as exc:
        print(f"error: {exc.source}: nothing changed", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
