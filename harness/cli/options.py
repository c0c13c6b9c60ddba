"""Command-line options shared by several `pams` commands (one definition each)."""

from __future__ import annotations

import argparse
import os


def add_impl(parser: argparse.ArgumentParser) -> None:
    """`--impl ADAPTER`: which implementation to run."""
    parser.add_argument(
        "--impl",
        required=True,
        metavar="ADAPTER",
        help="adapter TOML file, a directory holding pams.toml, or 'reference' for the bundled one",
    )


def positive_seconds(text: str) -> float:
    """argparse type: a positive number of seconds (a one-line error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def add_jobs(parser: argparse.ArgumentParser, what: str) -> None:
    """`-j N`: how many runs at once (default: the number of cores)."""
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help=f"{what} (default: the number of cores)",
    )
