"""`pneumolab` command line: import, list, train, evaluate, predict, export, worker.

Every command prints exactly one JSON line on stdout at the end; progress goes to stderr.
Exit status: 0 done, 2 bad input (refused files, unknown names, missing paths).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from core.workspace import Workspace

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """A user error: printed as {"error": ...} and exit 2."""


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _stderr_progress(i: int, n: int, name: str) -> None:
    if n and sys.stderr.isatty():
        sys.stderr.write(f"\r[{i}/{n}] {' ' * 10}")
        sys.stderr.flush()


def cmd_import(ws: Workspace, args: argparse.Namespace) -> int:
    from core.importer import import_paths

    report = import_paths(ws, args.paths, progress=_stderr_progress, imported_by="cli")
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    _emit(report.summary())
    return EXIT_BAD_INPUT if report.refused else 0


def cmd_images(ws: Workspace, args: argparse.Namespace) -> int:
    from core.catalog import list_images
    from db.queries import WorklistFilter

    images = list_images(ws, WorklistFilter(status=args.status, modality=args.modality, sort="id"))
    if args.json:
        _emit({"images": images, "count": len(images)})
    else:
        for im in images:
            print(
                f"{im['id']:>7}  {im['display_name']}  {im['width']}x{im['height']}  "
                f"{im['modality']:<4} {im['status']}"
            )
    return 0


COMMANDS: dict[str, tuple[Callable[[Workspace, argparse.Namespace], int], str]] = {
    "import": (cmd_import, "import PNG/JPEG/DICOM files, folders (recursive) and .zip files"),
    "images": (cmd_images, "list the workspace's images"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pneumolab", description=__doc__.splitlines()[0])
    p.add_argument("--workspace", help="workspace folder (default: $PNEUMOLAB_HOME or ~/PneumoLab)")
    sub = p.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help=COMMANDS["import"][1])
    imp.add_argument("paths", nargs="+", help="files, folders or .zip archives")

    ims = sub.add_parser("images", help=COMMANDS["images"][1])
    ims.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    ims.add_argument("--status", help="only images with this status (e.g. unlabelled)")
    ims.add_argument("--modality", help="only images of this modality (e.g. CR)")

    for name, (_fn, help_text) in COMMANDS.items():
        if name not in sub.choices:
            extra = EXTRA_PARSERS.get(name)
            if extra:
                extra(sub.add_parser(name, help=help_text))
    return p


# name -> function adding that command's arguments (for commands defined elsewhere)
EXTRA_PARSERS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ws = Workspace.open(args.workspace)
    except OSError as e:
        _emit({"error": f"cannot open workspace: {e}"})
        return EXIT_BAD_INPUT
    try:
        return COMMANDS[args.command][0](ws, args)
    except BadInput as e:
        _emit({"error": str(e)})
        return EXIT_BAD_INPUT
    finally:
        ws.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
