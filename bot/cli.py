"""The `kimibot` command: run, chat, migrate, export."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from bot import __version__
from bot.config import Config, ConfigError, load_config
from bot.logs import setup_logging

log = logging.getLogger("kimibot")

NOTHING_TO_RUN = """\
kimibot: no platform is configured, so there is nothing to run.
  Slack:   set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode), or SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET
           with [slack] mode = "http"; see README.md, "Slack setup".
  Discord: set DISCORD_TOKEN; see README.md, "Discord setup".
To talk to Kimi from this terminal right now, run: kimibot chat"""

# Each platform's adapter module exposes `async def serve(services) -> None`.
PLATFORMS = {"slack": "adapters.slack.runner", "discord": "adapters.discord.runner"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kimibot", description="Kimi K2.5 in Slack and Discord.")
    parser.add_argument("--version", action="version", version=f"kimibot {__version__}")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML config file (default: ./kimibot.toml if present)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="start every configured platform (Slack, Discord)")
    run.add_argument("--on-config-error", choices=["exit", "wait"], default="exit",
                     help="after a configuration error: exit 2 (default), or say it once and wait for a stop "
                          "signal (containers: no restart loop repeating the same error)")
    chat = commands.add_parser("chat", help="talk to Kimi from the terminal")
    chat.add_argument("--session", default="default", help="conversation name (default: default)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    export = commands.add_parser("export", help="write stored data as JSON Lines (one record per line)")
    export.add_argument("--conversation", type=int, default=None, help="one conversation, by its id")
    export.add_argument("--user", default=None, help="one person's data, by their platform user id")
    export.add_argument("--platform", default=None, help="slack, discord or console (with --user: where)")
    export.add_argument("--workspace", default=None, help="a Slack team or Discord server id")
    export.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")
    return parser


async def _migrate(config: Config) -> int:
    from storage.db import describe_failure, make_engine, migrate_when_up

    url = config.storage.url
    try:
        engine = make_engine(url)
    except Exception as exc:  # a driver that is not installed, a URL the driver cannot read
        raise ConfigError(f"storage.url: {describe_failure(url, exc)}") from None
    try:
        await migrate_when_up(engine, config.storage.wait_seconds)
    except Exception as exc:
        raise ConfigError(f"storage.url: {describe_failure(url, exc)}") from None
    finally:
        await engine.dispose()
    print("kimibot: database is up to date")
    return 0


async def _run(config: Config) -> int:
    active = [name for name in PLATFORMS if getattr(config, name).active]
    if not active:
        print(NOTHING_TO_RUN, file=sys.stderr)
        return 2
    servers = {}
    for name in active:
        try:
            servers[name] = importlib.import_module(PLATFORMS[name]).serve
        except ModuleNotFoundError:
            raise ConfigError(f"{name}: this version of kimibot cannot run {name} yet; "
                              f"set [{name}] enabled = false") from None
    from bot.app import build_services
    from bot.ops_server import start_ops_server
    from bot.supervisor import supervise

    services = await build_services(config)
    log.info("kimibot starting", extra={"platforms": active, "version": __version__,
                                        "replica": services.engine.replica.id})
    try:
        ops = await start_ops_server(config.ops, services.health, services.engine.metrics)
    except ConfigError:
        await services.aclose()
        raise
    stopping = asyncio.Event()
    _on_signals(stopping)
    services.start_background()
    platforms = [asyncio.create_task(supervise(name, lambda serve=serve: serve(services, stopping), stopping),
                                     name=f"kimibot-{name}") for name, serve in servers.items()]
    try:
        # A platform returns only once `stopping` is set (after draining), or raises a configuration error
        # on its first start; then the others drain too.
        for finished in asyncio.as_completed(platforms):
            try:
                await finished
            except BaseException:
                stopping.set()
                await asyncio.gather(*platforms, return_exceptions=True)
                raise
    finally:
        if ops is not None:
            await ops.cleanup()
        await services.aclose()
    log.info("kimibot stopped")
    return 0


def _on_signals(stopping: asyncio.Event) -> None:
    """SIGTERM (`docker stop`, Kubernetes, a rolling deploy) and Ctrl-C drain gracefully; a second one stops
    at once, leaving answers in flight for the next process to resume."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def handle() -> None:
        if stopping.is_set() and main_task is not None:
            main_task.cancel()
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle)


async def _chat(config: Config, session: str) -> int:
    from adapters.console import run_console

    return await run_console(config, session=session, stdin=sys.stdin, stdout=sys.stdout)


async def _export(config: Config, args: argparse.Namespace) -> int:
    from bot.export import export_jsonl
    from storage.db import describe_failure
    from storage.store import Store

    try:
        store = await Store.open(config.storage.url, wait=config.storage.wait_seconds)
    except Exception as exc:
        raise ConfigError(f"storage.url: {describe_failure(config.storage.url, exc)}") from None
    try:
        out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
        try:
            written = await export_jsonl(store, out, conversation_id=args.conversation, user=args.user,
                                         platform=args.platform, workspace=args.workspace)
        finally:
            if args.out:
                out.close()
    finally:
        await store.close()
    print(f"kimibot: exported {written} records", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    code = _main(args)
    if code == 2 and args.command == "run" and args.on_config_error == "wait":
        _wait_for_stop()
    return code


def _wait_for_stop() -> None:
    """A restart cannot fix a configuration: stay (unhealthy: no /healthz) until stopped, instead of exiting
    into a restart loop that repeats the same error."""
    print("kimibot: waiting for a stop signal; fix the configuration, then restart the container",
          file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(3600):
        pass


def _main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        # The terminal chat keeps the screen for the conversation: only warnings go to stderr there.
        level = "WARNING" if args.command == "chat" and config.logging.level == "INFO" else config.logging.level
        setup_logging(level, "text" if args.command == "chat" else config.logging.format)
        runner = {"run": lambda: _run(config), "migrate": lambda: _migrate(config),
                  "chat": lambda: _chat(config, args.session), "export": lambda: _export(config, args)}[args.command]
        return asyncio.run(runner())
    except asyncio.CancelledError:
        return 0
    except ConfigError as exc:
        print(f"kimibot: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:  # one record through the logger (JSON in production), not a raw traceback on stderr
        log.exception("kimibot stopped by an unexpected error")
        return 1


if __name__ == "__main__":
    sys.exit(main())
