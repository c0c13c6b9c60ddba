"""`pams init`: write an adapter for a submission by looking at it and probing it
(harness.adapters.init does the work; docs/init.md)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from harness.adapters.init import DEFAULT_BUDGET, InitError, init_submission
from harness.adapters.init.layout import LANGS
from harness.cli.options import positive_seconds
from harness.exits import EXIT_ERROR, EXIT_PASS


def add_init(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "init",
        help="write an adapter for a submission by inspecting and probing it",
        description="Find a submission's build and its coordinator and participant programs, "
        "build it once in a temporary directory, probe the programs (config formats, command "
        "words, ports, exit on deregister, prompts) and write an adapter whose every field "
        "says how it was found. Exit 0 written (and, with --check, the smoke schedule "
        "passed), 1 --check failed, 2 nothing written (candidates listed, build failed).",
    )
    parser.add_argument("dir", metavar="DIR", type=Path, help="the submission's directory")
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="where to write (default DIR/pams.toml)"
    )
    parser.add_argument("--lang", choices=LANGS, help="the language (default: detected)")
    parser.add_argument(
        "--check", action="store_true", help="then run the smoke schedule with the adapter"
    )
    parser.add_argument(
        "--budget",
        type=positive_seconds,
        default=DEFAULT_BUDGET,
        metavar="SECONDS",
        help=f"time the probe may take (default {DEFAULT_BUDGET:g})",
    )
    parser.add_argument(
        "--coordinator", metavar="NAME", help="the coordinator program (file or class)"
    )
    parser.add_argument(
        "--participant", metavar="NAME", help="the participant program (file or class)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    started = time.monotonic()

    def say(message: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - started:5.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        path = init_submission(
            args.dir,
            args.output,
            lang=args.lang,
            budget=args.budget,
            coordinator=args.coordinator,
            participant=args.participant,
            force=args.force,
            say=say,
        )
    except InitError as e:
        print(f"pams init: {e}", file=sys.stderr)
        if e.output:
            print(e.output, file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {path}")
    unknown = [x for x in path.read_text().splitlines() if x.startswith("#   - ")]
    for line in unknown:
        print(f"could not infer: {line[6:]}")
    if not args.check:
        return EXIT_PASS
    from harness.adapters.init.check import run_check

    with tempfile.TemporaryDirectory(prefix="pams-init-check-") as tmp:
        status, text = run_check(str(path), Path(tmp) / "run")
        print(text.replace(str(Path(tmp)), "(temporary)"))
    return status
