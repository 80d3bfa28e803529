"""Fixtures of the router tests: one trained model per session (torch training takes a moment),
exported under as many versions as a test needs, and a dispatcher wired like the service's."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from router_helpers import T0_WALL, instance_state, trained

from lodestar.learn.blob import ModelState
from lodestar.learn.trainer import OnlineTrainer
from lodestar.policy.contracts import Policy
from lodestar.policy.directory import InstanceDirectory
from lodestar.policy.fleet import FleetState
from lodestar_router.dispatch import Dispatcher
from lodestar_router.metrics import RouterMetrics
from lodestar_router.model_updates import ModelStore
from lodestar_router.service import policy_builder
from lodestar_schemas.events import Event

MONO_T0 = 1000.0


@pytest.fixture(scope="session")
def trainer() -> OnlineTrainer:
    return trained()


@pytest.fixture(scope="session")
def model_state(trainer: OnlineTrainer) -> Callable[[int], ModelState]:
    """``model_state(version)``: the session's trained model exported as ``version``."""
    cache: dict[int, ModelState] = {}

    def get(version: int) -> ModelState:
        if version not in cache:
            cache[version] = trainer.export(version)
        return cache[version]

    return get


class Published(list[Event]):
    """The publish callback: keeps every event."""

    def __call__(self, event: Event) -> bool:
        self.append(event)
        return True


@pytest.fixture
def published() -> Published:
    return Published()


def directory_with(ids: list[str], staleness_s: float = 2.0, remove_after_s: float = 30.0) -> InstanceDirectory:
    """Instances ``ids``, all scraped just now (host time ``MONO_T0``)."""
    directory = InstanceDirectory(FleetState(), staleness_s, remove_after_s)
    for iid in ids:
        directory.apply(instance_state(iid), MONO_T0, T0_WALL.timestamp())
    return directory


@pytest.fixture
def make_dispatcher(published: Published) -> Callable[..., Dispatcher]:
    """``make_dispatcher(profile="round-robin", ids=[...])``: a dispatcher over fresh instances."""

    def make(profile: str = "round-robin", ids: list[str] | None = None, policy: Policy | None = None) -> Dispatcher:
        directory = directory_with(ids if ids is not None else ["a", "b", "c"])
        return Dispatcher(directory, policy or policy_builder(0)(profile), ModelStore(), RouterMetrics(), published)

    return make
