"""``lodestar peers``: install, run and stop the peer routers (sglang-router, vllm-router).

Peers are needed only by benchmarks and the live parity test, so ``make setup`` does not
install them (``make peers`` does). A bad option prints one line naming it and exits with
status 2; a router that fails to start exits with status 1 and its log tail.
"""

from __future__ import annotations

import shlex
import signal
import threading
from typing import Annotated, NoReturn

import typer

from lodestar.peers.catalog import PEERS, PeerSpec, peer_spec


def build() -> typer.Typer:
    app = typer.Typer(
        help="Peer routers (sglang-router 0.3.2, vllm-router 0.1.17) as local processes, for benchmarks.",
        no_args_is_help=True,
    )

    @app.command()
    def install(
        peers: Annotated[list[str] | None, typer.Argument(help="sglang and/or vllm [both]")] = None,
    ) -> None:
        """Install each peer into its own venv under .lodestar/peers/<name> (pinned, idempotent)."""
        from lodestar.localinfra.settings import LocalInfraSettings
        from lodestar.peers.install import PeerInstallError, install_peer

        settings = LocalInfraSettings()
        for name in peers or list(PEERS):
            spec = _spec(name)
            try:
                done = install_peer(spec, settings)
            except PeerInstallError as exc:
                typer.echo(f"lodestar peers install: {exc}", err=True)
                raise typer.Exit(1) from None
            typer.echo(f"{spec.requirement} installed at {done.root}")

    @app.command()
    def policies() -> None:
        """List each peer's policies, with what they need from the workers."""
        for spec in PEERS.values():
            typer.echo(f"{spec.name} ({spec.requirement}):")
            for policy, note in spec.policies.items():
                default = "(default) " if policy == spec.default_policy else ""
                typer.echo(f"  {policy:<20} {default}{note}".rstrip())

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def run(
        ctx: typer.Context,
        peer: Annotated[str, typer.Argument(help="sglang or vllm")],
        workers: Annotated[
            list[str], typer.Option("--workers", help="worker URL; repeat it, or separate URLs with commas")
        ],
        policy: Annotated[
            str | None, typer.Option(help="routing policy (see `lodestar peers policies`) [the router's default]")
        ] = None,
        port: Annotated[int, typer.Option(help="router port on --host")] = 30000,
        host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
        metrics_port: Annotated[int | None, typer.Option(help="Prometheus exporter port [a free one]")] = None,
        cache_threshold: Annotated[float | None, typer.Option(help="cache_aware only [wheel default 0.3]")] = None,
        balance_abs_threshold: Annotated[int | None, typer.Option(help="cache_aware only [64]")] = None,
        balance_rel_threshold: Annotated[float | None, typer.Option(help="cache_aware only [1.5]")] = None,
        log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
        timeout: Annotated[float, typer.Option(help="seconds to wait until every worker is healthy")] = 60.0,
        detach: Annotated[bool, typer.Option(help="leave it running in the background and return")] = False,
    ) -> None:
        """Start a peer router in front of WORKERS and wait until it routes; Ctrl-C stops it.

        Arguments after `--` go to the router unchanged (e.g. `-- --disable-retries`).
        """
        from lodestar.localinfra.settings import LocalInfraSettings
        from lodestar.peers.install import PeerInstallError
        from lodestar.peers.launch import PeerLaunch, PeerStartError, start_peer, stop_peer

        spec = _spec(peer)
        policy = policy or spec.default_policy
        urls = tuple(u.strip() for item in workers for u in item.split(",") if u.strip())
        try:
            launch = PeerLaunch(
                spec=spec,
                policy=policy,
                workers=urls,
                port=port,
                host=host,
                metrics_port=metrics_port,
                log_level=log_level,
                cache_threshold=cache_threshold,
                balance_abs_threshold=balance_abs_threshold,
                balance_rel_threshold=balance_rel_threshold,
                extra_args=tuple(ctx.args),
            )
        except ValueError as exc:
            _fail(str(exc))
        settings = LocalInfraSettings()
        try:
            router = start_peer(launch, settings, timeout_s=timeout)
        except (PeerStartError, PeerInstallError) as exc:
            typer.echo(f"lodestar peers run: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{spec.requirement} ({policy}) ready at {router.url} after {router.ready_after_s:.1f}s")
        typer.echo(f"  command: {shlex.join(router.argv)}")
        typer.echo(f"  log: {router.process.log_file}")
        if detach:
            typer.echo(f"  stop: lodestar peers stop {spec.name} --port {port}")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(0.5):
            if not router.process.is_running():
                log = router.process.run_log_tail()
                typer.echo(f"lodestar peers run: the router exited; its log since it started:\n{log}", err=True)
                raise typer.Exit(1)
        stop_peer(spec, port, settings)

    @app.command()
    def stop(
        peer: Annotated[str, typer.Argument(help="sglang or vllm")],
        port: Annotated[int, typer.Option(help="the port it was started on")] = 30000,
    ) -> None:
        """Stop a router started with `lodestar peers run --detach`."""
        from lodestar.localinfra.settings import LocalInfraSettings
        from lodestar.peers.launch import stop_peer

        spec = _spec(peer)
        stopped = stop_peer(spec, port, LocalInfraSettings())
        typer.echo(f"{spec.name} router on port {port} " + ("stopped" if stopped else "was not running"))

    return app


def _spec(name: str) -> PeerSpec:
    try:
        return peer_spec(name)
    except ValueError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"lodestar peers: {message}", err=True)
    raise typer.Exit(code)
