"""Command-line options shared by several `pams` commands (one definition each)."""

from __future__ import annotations

import argparse


def add_impl(parser: argparse.ArgumentParser) -> None:
    """`--impl ADAPTER`: which implementation to run."""
    parser.add_argument(
        "--impl",
        required=True,
        metavar="ADAPTER",
        help="adapter TOML file, a directory holding pams.toml, or 'reference' for the bundled one",
    )
