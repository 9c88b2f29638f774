"""`lamina runtimes list | install NAME… | remove NAME`: the runtime images on this host.

The images live in LAMINA_RUNTIMES_DIR (default `~/.cache/lamina/runtimes`, shared by every
data dir; `--dir` overrides both), the directory `lamina serve` uses, and are built from
LAMINA_DEBIAN_MIRROR (default: the host's apt source). `install` draws one progress line per
runtime on a terminal (a bar over the build's steps and the tool's latest line), and prints
only the steps elsewhere. The commands work on the directory, with or without a server.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from lamina.errors import ImageBuildError
from lamina.runtimes.images import ImageStore
from lamina.settings import Settings

_STEP = re.compile(r"\[(\d+)/(\d+)\] (\w+): (.*)")
BAR = 20


def _store(args: argparse.Namespace) -> ImageStore:
    settings = Settings.from_env(runtimes_dir=args.dir)
    return ImageStore(settings.effective_runtimes_dir, mirror=settings.debian_mirror)


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size else "-"


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    infos = store.list()
    if args.json:
        print(json.dumps([asdict(info) for info in infos], indent=2))
        return 0
    rows = [("RUNTIME", "STATE", "VERSION", "SIZE", "DIGEST")]
    rows += [(i.name, i.state, i.version or "-", _mib(i.size), i.digest[:16]) for i in infos]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"(images in {store.root})")
    return 0


class ProgressLine:
    """Renders a build's progress messages: in place on a terminal, one line per step elsewhere."""

    def __init__(self, runtime: str, out: TextIO) -> None:
        self.runtime = runtime
        self.out = out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.step = ""

    def __call__(self, message: str) -> None:
        match = _STEP.fullmatch(message)
        if match is None:
            return
        index, total, step, detail = int(match[1]), int(match[2]), match[3], match[4]
        if self.tty:
            done = round(BAR * (index - 1) / total)
            head = (f"\r{self.runtime:<16} [{'#' * done}{'.' * (BAR - done)}] {index}/{total} {step:<11} "
                    f"{time.monotonic() - self.started:4.0f}s ")
            room = shutil.get_terminal_size((100, 20)).columns - len(head) - 1
            self.out.write(head + detail[:max(room, 0)].ljust(max(room, 0)))
            self.out.flush()
        elif step != self.step:
            print(f"{self.runtime}: [{index}/{total}] {step}: {detail}", file=self.out, flush=True)
        self.step = step

    def finish(self, text: str) -> None:
        if self.tty:
            self.out.write("\r" + " " * (shutil.get_terminal_size((100, 20)).columns - 1) + "\r")
        print(f"{self.runtime:<16} {text}", file=self.out, flush=True)


def _install(args: argparse.Namespace) -> int:
    store = _store(args)
    unknown = [name for name in args.names if name not in store.recipes]
    if unknown:
        print(f"lamina: no image recipe for {', '.join(unknown)}; recipes: {', '.join(sorted(store.recipes))}",
              file=sys.stderr)
        return 2
    failed = 0
    for name in dict.fromkeys(args.names):
        line = ProgressLine(name, sys.stdout)
        try:
            image = store.ensure(name, line)
        except ImageBuildError as exc:
            line.finish("failed")
            print(f"lamina: {exc}", file=sys.stderr)
            failed += 1
            continue
        line.finish(f"ready  {image.version or '-'}  {_mib(image.size)}  {image.root}")
    return 1 if failed else 0


def _remove(args: argparse.Namespace) -> int:
    store = _store(args)
    if store.remove(args.name):
        print(f"removed the {args.name} images from {store.root}")
        return 0
    print(f"lamina: no {args.name} image in {store.root}", file=sys.stderr)
    return 1


def add_runtimes_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runtimes = sub.add_parser("runtimes", help="list, build or remove runtime images")
    commands = runtimes.add_subparsers(dest="runtimes_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dir", type=Path, help="the runtimes directory (default: LAMINA_RUNTIMES_DIR, "
                                                     "else ~/.cache/lamina/runtimes)")

    listing = commands.add_parser("list", help="each runtime's image: state, version, size")
    listing.add_argument("--json", action="store_true")
    common(listing)
    listing.set_defaults(run=_list)
    install = commands.add_parser("install", help="build runtime images (each once; built ones are kept)")
    install.add_argument("names", nargs="+", metavar="NAME")
    common(install)
    install.set_defaults(run=_install)
    remove = commands.add_parser("remove", help="delete a runtime's images")
    remove.add_argument("name", metavar="NAME")
    common(remove)
    remove.set_defaults(run=_remove)
