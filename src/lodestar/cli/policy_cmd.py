"""``lodestar policy``: list the registered plugin types and shipped profiles, show a resolved
profile, and measure decision costs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from lodestar.plugins import full_registry
from lodestar.policy.profile_spec import (
    ProfileError,
    ProfileSpec,
    list_profiles,
    load_profile,
    load_profile_file,
    resolved_params,
)
from lodestar.policy.registry import KINDS, PolicyRegistry


def _load(profile: str) -> ProfileSpec:
    """A shipped profile by name, or a profile file by path (``*.yaml`` / ``*.yml``)."""
    path = Path(profile)
    if profile.endswith((".yaml", ".yml")) or path.is_file():
        return load_profile_file(path)
    return load_profile(profile)


def _resolved(spec: ProfileSpec, registry: PolicyRegistry) -> dict[str, Any]:
    params = resolved_params(spec, registry)
    out: dict[str, Any] = {"name": spec.name}
    if spec.description:
        out["description"] = spec.description

    def entry(path: str, ref: Any, weight: float | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"type": ref.type}
        if ref.name:
            item["name"] = ref.name
        if weight is not None:
            item["weight"] = weight
        if params[path]:
            item["params"] = params[path]
        return item

    if spec.policy is not None:
        out["policy"] = entry("policy", spec.policy)
        return out
    out["filters"] = [entry(f"filters[{i}]", f) for i, f in enumerate(spec.filters)]
    out["scorers"] = [entry(f"scorers[{i}]", s, s.weight) for i, s in enumerate(spec.scorers)]
    out["picker"] = entry("picker", spec.picker)
    return out


def build() -> typer.Typer:
    app = typer.Typer(help="Routing policies: plugin types, profiles, decision costs.", no_args_is_help=True)

    @app.command("list")
    def list_() -> None:
        """Registered plugin types and shipped profiles, with one-line descriptions."""
        registry = full_registry()
        for kind in KINDS:
            specs = registry.specs(kind)
            if not specs:
                continue
            typer.echo(f"{kind} types:")
            for spec in specs:
                typer.echo(f"  {spec.type_name:<28} {spec.description}")
        typer.echo("profiles:")
        for name in list_profiles():
            typer.echo(f"  {name:<28} {load_profile(name).description}")

    @app.command()
    def show(
        profile: Annotated[str, typer.Argument(help="shipped profile name, or a path to a profile YAML file")],
    ) -> None:
        """Print a profile resolved against the registry, every parameter with its default."""
        try:
            spec = _load(profile)
            text = yaml.safe_dump(_resolved(spec, full_registry()), sort_keys=False, allow_unicode=True)
        except ProfileError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(text.rstrip())

    @app.command()
    def bench(
        profile: Annotated[list[str] | None, typer.Option(help="profile to measure (repeatable; default: all)")] = None,
        candidates: Annotated[int, typer.Option(min=1, help="candidate instances")] = 8,
        blocks: Annotated[int, typer.Option(min=1, help="16-token blocks per prompt")] = 1000,
        shared_frac: Annotated[float, typer.Option(min=0.0, max=1.0, help="shared share of each prompt")] = 0.5,
        decisions: Annotated[int, typer.Option(min=10, help="timed decisions per profile")] = 2000,
    ) -> None:
        """Measure the wall-clock cost of a decision for each profile (not a test)."""
        from lodestar.policy.bench import bench_profile

        registry = full_registry()
        names = profile or list_profiles()
        try:
            for name in names:
                load_profile(name)
        except ProfileError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"{'profile':<22} {'mean_us':>9} {'p50_us':>9} {'p99_us':>9} {'feedback_us':>12}")
        for name in names:
            r = bench_profile(
                registry, name, candidates=candidates, blocks=blocks, shared_frac=shared_frac, decisions=decisions
            )
            typer.echo(
                f"{name:<22} {r.decide_mean_us:9.1f} {r.decide_p50_us:9.1f} {r.decide_p99_us:9.1f}"
                f" {r.feedback_mean_us:12.1f}"
            )

    return app
