"""Command line of the embedded stack: `python3 -m scripts.embedded up|down|status|logs|demo`."""

from __future__ import annotations

import argparse
import sys

from . import demo
from .config import StackConfig
from .stack import Stack, print_logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m scripts.embedded", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the stack and wait until it is healthy")
    sub.add_parser("down", help="stop exactly the processes `up` started")
    sub.add_parser("status", help="one line per component; exit 1 when not all healthy")
    logs = sub.add_parser("logs", help="the last lines of every component's log")
    logs.add_argument("--lines", type=int, default=40)
    sub.add_parser("demo", help="run the pipeline through Airflow and print a summary")
    args = parser.parse_args(argv)

    cfg = StackConfig.from_env()
    stack = Stack(cfg)
    if args.command == "up":
        stack.up()
        stack.print_urls()
    elif args.command == "down":
        stack.down()
    elif args.command == "status":
        return 0 if stack.status() else 1
    elif args.command == "logs":
        print_logs(stack, args.lines)
    elif args.command == "demo":
        return demo.main(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
