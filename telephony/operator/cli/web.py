"""`python -m telephony web`: the call-log web page (telephony/operator/web).

aiohttp and Jinja2 are imported only when the command runs, so `--help` stays fast."""

from __future__ import annotations

import argparse
from dataclasses import replace

from telephony.domain.settings import SettingsError, read_settings, web_access_problems
from telephony.operator.cli.base import CliError, add_command, whole_number_arg

P = "python -m telephony web"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        subparsers,
        "web",
        summary="Serve the call log in a browser: calls, one call's page, an overview.",
        details=(
            "Read-only pages over the call records (DATABASE_URL or CALL_RECORDS_PATH).\n"
            "Listens on WEB_HOST:WEB_PORT (default 127.0.0.1:8090). Anywhere but loopback\n"
            "it needs WEB_TOKEN: the browser asks for it as the password (any user name),\n"
            "or send `Authorization: Bearer <token>`. Phone numbers are masked when\n"
            "MASK_PHONE_NUMBERS is on (the default). Stop it with Ctrl-C."
        ),
        examples=[P, f"{P} --port 9000", f"WEB_TOKEN=$(openssl rand -hex 16) {P} --host 0.0.0.0"],
        run=_web,
    )
    parser.add_argument("--host", help="listen here instead of WEB_HOST")
    parser.add_argument(
        "--port", type=whole_number_arg(1, 65535), help="listen on this port instead of WEB_PORT"
    )


def _web(args: argparse.Namespace) -> int:
    settings = read_settings()
    settings = replace(
        settings,
        web_host=args.host or settings.web_host,
        web_port=args.port or settings.web_port,
    )
    if problems := web_access_problems(settings):
        if args.host:
            raise CliError(problems[0].replace("WEB_HOST=", "--host ", 1), exit_code=2)
        raise SettingsError(problems)
    from telephony.operator.web.app import serve  # aiohttp and Jinja2: only now

    return serve(settings)
