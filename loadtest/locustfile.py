"""Portcullis load test: the sending pipeline, API users and list managers through the
gateway. See README, "Load testing", for the command; `locust -f loadtest/locustfile.py
--help` lists the Portcullis options (admin URL and token, accounts, seed size, p99 limit)."""

from __future__ import annotations

import logging
from typing import Any

from locust import events
from locust.runners import MasterRunner

from loadtest import state
from loadtest.options import add_options, default_admin_token
from loadtest.tenants import SetupError, make_tenants
from loadtest.users import ApiUser, ListManager, Sender
from loadtest.verdict import on_quitting

__all__ = ["ApiUser", "ListManager", "Sender"]
log = logging.getLogger("portcullis.loadtest")


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    add_options(parser)


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    state.parsed = environment.parsed_options
    # --tags alone would leave the other classes with no task (locust then errors): keep
    # only the classes with a task carrying one of the tags.
    tags = set(getattr(environment.parsed_options, "tags", None) or ())
    if tags:
        environment.user_classes[:] = [
            cls for cls in environment.user_classes
            if any(tags & getattr(t, "locust_tag_set", set()) for t in cls.tasks)]


@events.test_start.add_listener
def _make_tenants(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # each worker makes its own
    opts = environment.parsed_options
    try:
        made = make_tenants(environment.host or "http://127.0.0.1:8080", opts.admin_url,
                            opts.admin_token or default_admin_token(), opts.accounts,
                            opts.seed)
    except SetupError as exc:
        log.error("set-up failed: %s", exc)
        environment.process_exit_code = 2
        environment.runner.quit()
        return
    state.tenants.tenants[:] = made.tenants
    log.info("set up %d accounts, %d suppressions seeded in each",
             len(made.tenants), opts.seed)


events.quitting.add_listener(on_quitting)
