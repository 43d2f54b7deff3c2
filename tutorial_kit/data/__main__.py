"""Command line for the course data: ``python -m tutorial_kit.data``.

Taught in ``00_setup_check``. Subcommands:

* ``status [--tier ci|workshop]``: which files are in the cache and in the mirror.
* ``fetch NAME...``: get files (cache, mirror, network; hash-verified); prints their paths.
* ``fill --tier ci|workshop [--dest DIR] [--allow-unverified]``: fetch a whole tier into the
  cache, or build a mirror folder (a USB stick) with ``--dest``; prints a report and exits
  with status 1 when any file failed.
* ``hash FILE...``: the SHA-256 of local files, in the ``sha256sum`` format (to register your
  own file with ``tk.data.register`` or a ``TUTORIAL_KIT_REGISTRY`` TOML file).
* ``path NAME``: where the file is now (cache, else mirror), without hashing or downloading;
  exits with status 1, printing where to put it, when there is no local copy.

Exit status: 0 success, 1 a file could not be obtained (or another data error), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from tutorial_kit.config import TIERS
from tutorial_kit.data import registry

_EPILOG = """\
environment variables:
  TUTORIAL_KIT_CACHE    the cache folder (default: the user cache folder + tutorial_kit)
  TUTORIAL_KIT_MIRROR   a folder with the course files in the cache layout, used before the
                        network (CI: ../shared/data; a workshop: a USB stick)
  TUTORIAL_KIT_OFFLINE  1 forbids network access
  TUTORIAL_KIT_REGISTRY TOML file(s) of your own entries ([[file]] name, path or url, sha256)

examples:
  python -m tutorial_kit.data status --tier ci
  python -m tutorial_kit.data fetch kang2018_scgen_valid.h5ad
  python -m tutorial_kit.data hash /data/my_screen.h5ad    # then register it with this sha256
  python -m tutorial_kit.data fill --tier workshop --dest /media/usb/tutorial_kit --allow-unverified
  export TUTORIAL_KIT_MIRROR=/media/usb/tutorial_kit   # on each participant's laptop
"""


def _print_table(table) -> None:
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_colwidth", 90, "display.max_rows", None):
        print(table.to_string(index=False))


def _cmd_status(args: argparse.Namespace) -> int:
    _print_table(registry.status(args.tier))
    print(f"\ncache:  {registry.cache_dir()}")
    mirror = registry.mirror_dir()
    print(f"mirror: {mirror if mirror else '(none: set TUTORIAL_KIT_MIRROR)'}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    rc = 0
    for name in args.names:
        try:
            path = registry.fetch(name, allow_unverified=args.allow_unverified, progress=not args.no_progress)
        except (registry.DataUnavailableError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            rc = 1
        else:
            print(path)
    return rc


def _cmd_fill(args: argparse.Namespace) -> int:
    target = args.names or args.tier
    report = registry.fill_cache(
        target, dest=args.dest, progress=not args.no_progress, allow_unverified=args.allow_unverified
    )
    _print_table(report[["name", "tier", "bytes", "status", "verified"]])
    failed = report["status"].str.startswith("failed")
    where = args.dest if args.dest else registry.cache_dir()
    print(f"\n{len(report) - failed.sum()} of {len(report)} files ready in {where}; {failed.sum()} failed.")
    if args.dest and not failed.any():
        print(f"Use it on another machine with: export TUTORIAL_KIT_MIRROR={args.dest}")
    return 1 if failed.any() else 0


def _cmd_hash(args: argparse.Namespace) -> int:
    rc = 0
    for name in args.files:
        try:
            print(f"{registry.file_hash(name)}  {name}")
        except OSError as exc:
            print(f"error: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
            rc = 1
    return rc


def _cmd_path(args: argparse.Namespace) -> int:
    entry = registry.lookup(args.name)
    if entry.local is not None:
        print(entry.local)
        return 0
    cached = registry.cache_dir() / entry.name
    mirror = registry.mirror_dir()
    if cached.is_file():
        print(cached)
        return 0
    if mirror is not None and (mirror / entry.name).is_file():
        print(mirror / entry.name)
        return 0
    print(
        f"{entry.name} is not in the cache or the mirror. `python -m tutorial_kit.data fetch {entry.name}` "
        f"downloads it to\n{cached}\n(put it there by hand, or into a mirror folder, when there is no network).",
        file=sys.stderr,
    )
    return 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m tutorial_kit.data``."""
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_kit.data",
        description="Course data: hash-verified files from the cache, a mirror folder or the network.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("status", help="which files are in the cache and in the mirror")
    p.add_argument("--tier", choices=TIERS, help="only this tier (default: both)")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("fetch", help="get files (cache, mirror, network) and print their paths")
    p.add_argument("names", nargs="+", metavar="NAME", help="registry names, e.g. kang2018_scgen_valid.h5ad")
    p.add_argument("--allow-unverified", action="store_true", help="accept files without a published hash")
    p.add_argument("--no-progress", action="store_true", help="no download progress bars")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser(
        "fill",
        help="fetch a whole tier into the cache, or build a mirror folder with --dest",
        description="Fetch every file of a tier (or the NAMEs) into the cache, or into a mirror folder "
        "with --dest (e.g. a USB stick for a workshop). Prints a report; exit status 1 if any failed.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="only these files (instead of --tier)")
    p.add_argument("--tier", choices=TIERS, default="ci", help="the tier to fetch (default: ci)")
    p.add_argument("--dest", metavar="DIR", help="build a mirror folder here instead of filling the cache")
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept files without a published hash (their sha256 is printed and recorded)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_fill)

    p = sub.add_parser("hash", help="print the SHA-256 of local files (to register your own data)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_cmd_hash)

    p = sub.add_parser("path", help="print where a file is now (cache, else mirror); no download")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_cmd_path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (registry.DataUnavailableError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess in the tests
    sys.exit(main())
