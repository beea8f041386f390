"""`pneumolab` command line: import, images, train, compare, evaluate, predict, models, worker.

Every command prints exactly one JSON line on stdout at the end; progress goes to stderr.
Exit status: 0 done, 2 bad input (refused files, unknown names, missing paths).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

from core.cli import demo as cli_demo
from core.cli import models as cli_models
from core.cli import users as cli_users
from core.cli.models import BadInput
from core.errors import PermissionDenied
from core.workspace import Workspace

EXIT_BAD_INPUT = 2


def _stderr_progress(i: int, n: int, _name: str) -> None:
    if n and sys.stderr.isatty():
        sys.stderr.write(f"\rimporting {i}/{n}" + ("\n" if i == n else ""))
        sys.stderr.flush()


def cmd_import(ws: Workspace, args: argparse.Namespace) -> dict:
    from core.ingest.importer import import_paths

    try:
        report = import_paths(
            ws, args.paths, progress=_stderr_progress, imported_by=args.actor or "cli"
        )
    except ValueError as e:  # a setting, not a file: files become refusals, never errors
        raise BadInput(str(e)) from e
    return report.summary()


def add_import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="files, folders (recursive) or .zip archives")


def cmd_images(ws: Workspace, args: argparse.Namespace) -> dict:
    from core.labels.catalog import list_images
    from db.queries import WorklistFilter

    images = list_images(ws, WorklistFilter(status=args.status, modality=args.modality, sort="id"))
    if not args.json:
        for im in images:
            sys.stderr.write(
                f"{im['id']:>7}  {im['display_name']}  {im['width']}x{im['height']}  "
                f"{im['modality']:<4} {im['status']}\n"
            )
    return {"images": images, "count": len(images)}


def add_images_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="only the JSON line (no table on stderr)")
    p.add_argument("--status", help="only images with this status (e.g. unlabelled)")
    p.add_argument("--modality", help="only images of this modality (e.g. CR)")


def cmd_worker(ws: Workspace, args: argparse.Namespace) -> dict:
    from core.jobs.lease import check_kinds
    from core.jobs.worker import run_worker, worker_status

    try:
        if args.status:
            return worker_status(ws)
        kinds = check_kinds(args.kinds)
    except ValueError as e:  # a bad --kinds or PNEUMOLAB_WORKER_TIMEOUT_S
        raise BadInput(str(e)) from e
    return run_worker(ws, kinds=kinds, parent_pid=args.parent_pid)


def add_worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kinds",
        help="comma-separated job kinds this worker takes (default: every kind), e.g. "
        "train,compare,update on a GPU box, predict,embed on a CPU box",
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="list the live workers (host, pid, kinds, heartbeat, current job) and exit",
    )
    p.add_argument(
        "--parent-pid", type=int, help="stop (as on SIGTERM) when the process with this pid ends"
    )


def cmd_export(ws: Workspace, args: argparse.Namespace) -> dict:
    from core.interchange.export import export_workspace

    try:
        return export_workspace(
            ws,
            args.format,
            args.out,
            reader=args.reader,
            image_data=args.image_data,
            zip_output=args.zip,
            actor=args.actor,
        )
    except ValueError as e:
        # A bad request (unknown reader or format, a target that is a file or not empty) or
        # an ExportError (the disk refused a write; the message says what to do and that
        # nothing was left behind): one JSON line and exit 2, never a traceback.
        raise BadInput(str(e)) from e


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=["labelme", "masks", "coco", "all"])
    p.add_argument("out", help="output folder, new or empty (or .zip path with --zip)")
    p.add_argument("--reader", help="only this reader's newest revision (default: each reader's)")
    p.add_argument("--image-data", action="store_true", help="embed imageData in LabelMe JSON")
    p.add_argument("--zip", action="store_true", help="write one .zip instead of a folder")


@dataclass(frozen=True)
class Command:
    run: Callable[[Workspace, argparse.Namespace], dict]
    add_args: Callable[[argparse.ArgumentParser], None]
    help: str


COMMANDS: dict[str, Command] = {
    "import": Command(
        cmd_import,
        add_import_args,
        "import PNG/JPEG/DICOM files, folders (recursive) and .zip files",
    ),
    "images": Command(cmd_images, add_images_args, "list the workspace's images"),
    "export": Command(cmd_export, add_export_args, "export LabelMe JSON, PNG masks or COCO"),
    "train": Command(
        cli_models.cmd_train,
        cli_models.add_train_args,
        "train a segmentation model on the workspace's labels",
    ),
    "compare": Command(
        cli_models.cmd_compare,
        cli_models.add_compare_args,
        "train several architectures on the same split and compare their scores",
    ),
    "evaluate": Command(
        cli_models.cmd_evaluate,
        cli_models.add_evaluate_args,
        "evaluate a model on a folder of images with LabelMe JSON",
    ),
    "predict": Command(
        cli_models.cmd_predict,
        cli_models.add_predict_args,
        "write probability maps, masks and boxes for images",
    ),
    "models": Command(cli_models.cmd_models, lambda p: None, "list model versions"),
    "activate": Command(
        cli_models.cmd_activate,
        cli_models.add_activate_args,
        "make a model version active (rollback = activate an older one)",
    ),
    "users": Command(
        cli_users.cmd_users,
        cli_users.add_users_args,
        "accounts: add, list, disable, enable, set-role, reset-password",
    ),
    "worker": Command(
        cmd_worker,
        add_worker_args,
        "run a job worker (training, batch prediction) in the foreground",
    ),
    "demo": Command(
        cli_demo.cmd_demo,
        cli_demo.add_demo_args,
        "serve one model version in a local Gradio demo (needs the demo extra)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pneumolab", description=__doc__.splitlines()[0])
    p.add_argument("--workspace", help="workspace folder (default: $PNEUMOLAB_HOME or ~/PneumoLab)")
    p.add_argument(
        "--as",
        dest="as_account",
        metavar="NAME",
        help="the account this command acts for; required for commands that change data once "
        "the workspace has accounts (a person's password is asked for, never a flag)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        cmd.add_args(sub.add_parser(name, help=cmd.help))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ws = Workspace.open(args.workspace)
    except OSError as e:
        print(json.dumps({"error": f"cannot open workspace: {e}"}), flush=True)
        return EXIT_BAD_INPUT
    try:
        args.actor = cli_users.acting_account(ws, args)
        result = COMMANDS[args.command].run(ws, args)
    except (BadInput, PermissionDenied) as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return EXIT_BAD_INPUT
    finally:
        ws.dispose()
    if result is None:  # a torchrun rank other than 0: rank 0 prints the one result
        return 0
    print(json.dumps(result, default=str), flush=True)
    return EXIT_BAD_INPUT if result.get("refused") else 0
