"""`lamina` command line: `serve` runs everything in one process; `logs` reads function logs;
`status` shows a server's environments; `runtimes` lists, builds and removes runtime images."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from pathlib import Path

from lamina.cli.runtimes import add_runtimes_parser
from lamina.cli.status import add_status_parser
from lamina.settings import Settings


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(host=args.host, port=args.port, data_dir=args.data_dir)
    try:
        settings.validate()
    except ValueError as exc:
        print(f"lamina: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    import uvicorn

    from lamina.api.protocol import guarded_protocol
    from lamina.app import create_app

    app = create_app(settings)
    # what start-up built (botocore's model, the routes) lives as long as the server: keep it
    # out of the collector's generations so that collections walk only what requests create
    gc.collect()
    gc.freeze()
    # httptools with header and body deadlines (uvicorn alone never times out a half-sent
    # request). No limit_concurrency: it answers 503 only once headers are complete, so it
    # would not stop connections that never finish theirs; the deadlines bound those.
    http = guarded_protocol(settings.header_timeout, settings.body_timeout)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, loop="uvloop", http=http,
                            lifespan="on", access_log=False, log_level="warning", timeout_keep_alive=75)
    server = uvicorn.Server(config)

    def crashed(_exc: BaseException) -> None:
        server.should_exit = True  # a background task failed: stop cleanly, exit non-zero below

    app.supervisor.on_crash = crashed
    server.run()
    if app.supervisor.crashed is not None:
        print(f"lamina: stopped after a background task failed: {app.supervisor.crashed!r}", file=sys.stderr)
        return 1
    return 0


def _logs(args: argparse.Namespace) -> int:
    from lamina.observe.logs import LogReader

    settings = Settings.from_env(data_dir=args.data_dir)
    reader = LogReader(settings.data_dir, args.region or settings.default_region, args.function_name)
    out = sys.stdout.buffer
    try:
        # both segments, oldest first; with --follow, what is appended, across rotations
        if not reader.poll(out.write) and not args.follow:
            print(f"lamina: no logs for {args.function_name}", file=sys.stderr)
            return 1
        out.flush()
        while args.follow:
            time.sleep(0.2)
            reader.poll(out.write)
            out.flush()
    finally:
        reader.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lamina", description="A self-hosted AWS Lambda-compatible service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", type=Path)
    serve.set_defaults(run=_serve)
    logs = sub.add_parser("logs", help="print a function's log")
    logs.add_argument("function_name")
    logs.add_argument("--follow", "-f", action="store_true")
    logs.add_argument("--data-dir", type=Path)
    logs.add_argument("--region")
    logs.set_defaults(run=_logs)
    add_status_parser(sub)
    add_runtimes_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
