"""`p2p`: run the stack, mint dev tokens, serve one service."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

app = typer.Typer(help="P2P automation platform", no_args_is_help=True, add_completion=False)


@app.command()
def up(
    state_dir: Annotated[str | None, typer.Option(help="Where state lives (default .p2p/)")] = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Temporal dev server without its UI")] = False,
) -> None:
    """Start PostgreSQL, the broker, Temporal and the four services; Ctrl-C stops them all."""
    from shared.cli.up import run_up

    raise typer.Exit(run_up(state_dir=state_dir, ui=not no_ui))


@app.command()
def token(
    user: Annotated[str, typer.Argument(help="User id (the `sub` claim)")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="Role; repeat for several")],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    ttl: Annotated[float, typer.Option(help="Validity in hours")] = 12.0,
) -> None:
    """Print a dev JWT for USER with the given roles, alone on stdout."""
    from shared.auth import mint_token

    try:
        typer.echo(mint_token(user, role, name=name, ttl=timedelta(hours=ttl)))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="requisitions | approvals | invoices | matching")],
    port: Annotated[int | None, typer.Option(help="Port (default from settings)")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
) -> None:
    """Run one service process (HTTP API, outbox relay, consumers, workers)."""
    import uvicorn

    from shared.devstack import SERVICES
    from shared.settings import get_settings

    if service not in SERVICES:
        typer.echo(f"error: unknown service {service!r}; one of {', '.join(SERVICES)}", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    uvicorn.run(
        f"services.{service}.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.service_port(service),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="Smaller sizes: a smoke run in about two minutes")] = False,
    only: Annotated[list[str] | None, typer.Option(help="Run only these benchmarks")] = None,
) -> None:
    """Run every benchmark; print a table against the targets and the machine's ceiling."""
    from shared.cli.bench import run_bench

    raise typer.Exit(run_bench(quick=quick, only=only))


@app.command()
def asyncapi(
    write: Annotated[bool, typer.Option(help="Write shared/contracts/asyncapi.yaml")] = False,
) -> None:
    """Print (or write) the AsyncAPI 3.0 document generated from the event contracts."""
    from pathlib import Path

    from shared.asyncapi import render

    text = render()
    if write:
        target = Path(__file__).resolve().parents[1] / "contracts" / "asyncapi.yaml"
        target.write_text(text)
        typer.echo(f"wrote {target}", err=True)
    else:
        typer.echo(text)


@app.command()
def demo(
    requisitions: Annotated[int, typer.Option(min=1, help="Requisitions in the simulated month")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the plan: the same seed gives the same plan")] = 42,
    base_url_host: Annotated[str, typer.Option(help="Host the services listen on")] = "127.0.0.1",
) -> None:
    """Simulate a month of purchase-to-pay against a running stack (`p2p up`), then summarise."""
    from shared.cli.demo import run_demo

    raise typer.Exit(run_demo(requisitions=requisitions, seed=seed, host=base_url_host))


if __name__ == "__main__":
    app()
