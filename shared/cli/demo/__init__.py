"""`p2p demo`: a deterministic, realistic month of purchase-to-pay against a running stack."""

from __future__ import annotations

import importlib.util
import sys

from rich.console import Console

from shared.settings import Settings

EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE = 0, 1, 2


def run_demo(requisitions: int = 40, seed: int = 42, host: str = "127.0.0.1",
             settings: Settings | None = None) -> int:
    from shared.cli.demo.client import Api, StackUnreachable
    from shared.cli.demo.report import render
    from shared.cli.demo.runner import DemoRun, load_world, previous_month_start
    from shared.cli.demo.scenario import build_plan

    settings = settings or Settings()
    err = Console(stderr=True)
    missing = [m for m in ("drafthorse", "facturx") if importlib.util.find_spec(m) is None]
    if missing:  # they build the CII and Factur-X invoices (the services do not need them)
        err.print(f"[red]error:[/] p2p demo needs {', '.join(missing)}: "
                  "pip install -e '.[dev]' (make install does it)")
        return EXIT_PROBLEMS
    out = Console(width=None if sys.stdout.isatty() else 120)
    api = Api(settings, host=host)
    try:
        try:
            states = api.check_reachable()
        except StackUnreachable as exc:
            err.print(f"[red]error:[/] the P2P stack is not reachable — {exc}.\n"
                      "Start it with `p2p up` (or `make run`); set P2P_*_PORT if it runs on "
                      "other ports.")
            return EXIT_UNREACHABLE
        not_ready = {s: v for s, v in states.items() if v != "ready"}
        if not_ready:
            err.print(f"[red]error:[/] the stack is up but not ready: {not_ready}")
            return EXIT_UNREACHABLE
        world = load_world(api)
        plan = build_plan(world, requisitions=requisitions, seed=seed,
                          month_start=previous_month_start())
        err.print(f"p2p demo: {requisitions} requisitions, seed {seed} (plan "
                  f"{plan.fingerprint()}), policy v{world.policy_version}, tolerances "
                  f"v{world.tolerance_version}")
        try:
            outcome = DemoRun(api, plan, world, err).run()
        except StackUnreachable as exc:
            err.print(f"[red]error:[/] the stack stopped answering — {exc}")
            return EXIT_UNREACHABLE
        render(outcome, out)
        if outcome.problems:
            err.print(f"[yellow]{len(outcome.problems)} problem(s) during the run:[/]")
            for problem in outcome.problems[:20]:
                err.print(f"  - {problem}")
            return EXIT_PROBLEMS
        err.print("[green]demo complete[/]")
        return EXIT_OK
    finally:
        api.close()
