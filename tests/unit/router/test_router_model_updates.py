"""Hot reload: valid models are taken, every kind of bad update is rejected, loudly counted,
and the model in use stays."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from router_helpers import model_update, with_nan

from lodestar.learn.blob import ModelState, encode_blob
from lodestar.learn.features import FEATURE_SCHEMA_VERSION
from lodestar.learn.policy import LodestarPolicy
from lodestar_router.dispatch import Dispatcher
from lodestar_router.feeds import ModelInstaller
from lodestar_router.model_updates import ModelRejected, ModelStore, check_update
from lodestar_schemas.events import ModelUpdate

StateOf = Callable[[int], ModelState]


def test_good_update_decodes_to_the_trained_state(model_state: StateOf) -> None:
    state = model_state(1)
    decoded = check_update(model_update(state))
    assert decoded.version == 1 and decoded.trained_samples == state.trained_samples
    assert decoded.metrics["val_mae_log_ttft"] == pytest.approx(state.metrics["val_mae_log_ttft"])
    for name, arr in state.arrays.items():
        np.testing.assert_array_equal(decoded.arrays[name], arr)


def _bad_updates(model_state: StateOf) -> dict[str, tuple[ModelUpdate, str, str]]:
    good = model_state(2)
    other_schema = dataclasses.replace(good, feature_schema_version=FEATURE_SCHEMA_VERSION + 1)
    return {
        "sha-mismatch": (model_update(good, sha256="0" * 64), "sha256_mismatch", "does not match"),
        "nan-weights": (model_update(with_nan(good)), "invalid_blob", "NaN or Inf"),
        "inf-normalisation": (model_update(with_nan(good, "x_mean")), "invalid_blob", "NaN or Inf"),
        "event-feature-schema": (
            model_update(good, feature_schema_version=FEATURE_SCHEMA_VERSION + 1),
            "feature_schema",
            "feature_schema_version",
        ),
        "blob-feature-schema": (
            model_update(good, blob=encode_blob(other_schema)),
            "invalid_blob",
            "feature schema version",
        ),
        "format": (model_update(good, weights_format="onnx/1"), "format", "weights_format"),
        "version-mismatch": (model_update(good, version=9), "version_mismatch", "blob holds version 2"),
        "not-an-archive": (model_update(good, blob=b"garbage"), "invalid_blob", "archive"),
    }


BAD = [
    "sha-mismatch",
    "nan-weights",
    "inf-normalisation",
    "event-feature-schema",
    "blob-feature-schema",
    "format",
    "version-mismatch",
    "not-an-archive",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_updates_are_rejected_with_a_reason(model_state: StateOf, case: str) -> None:
    update, reason, fragment = _bad_updates(model_state)[case]
    with pytest.raises(ModelRejected) as info:
        check_update(update)
    assert info.value.reason == reason
    assert fragment in info.value.message


@pytest.mark.parametrize("case", BAD)
async def test_rejected_update_keeps_the_model_in_use(
    model_state: StateOf, make_dispatcher: Callable[..., Dispatcher], case: str
) -> None:
    dispatcher = make_dispatcher("lodestar")
    installer = ModelInstaller(dispatcher.models, dispatcher)
    assert await installer.offer(model_update(model_state(1)))
    assert dispatcher.model_version == 1
    update, reason, _ = _bad_updates(model_state)[case]
    assert not await installer.offer(update)
    assert dispatcher.model_version == 1
    store = dispatcher.models
    assert store.latest_version == 1 and store.rejected[reason] == 1 and store.rejected_total == 1
    assert store.last_rejection is not None and store.last_rejection.reason == reason


async def test_newer_models_replace_older_and_stale_ones_are_ignored(
    model_state: StateOf, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    dispatcher = make_dispatcher("lodestar")
    installer = ModelInstaller(dispatcher.models, dispatcher)
    assert await installer.offer(model_update(model_state(2)))
    assert not await installer.offer(model_update(model_state(1)))  # a compacted-topic re-read
    assert (dispatcher.model_version, dispatcher.models.stale) == (2, 1)
    assert await installer.offer(model_update(model_state(3)))
    assert dispatcher.model_version == 3
    assert dispatcher.models.metrics_of(3) == dict(model_state(3).metrics)
    assert dispatcher.models.rejected_total == 0


async def test_model_waits_for_a_learned_policy(
    model_state: StateOf, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    dispatcher = make_dispatcher("round-robin")
    installer = ModelInstaller(dispatcher.models, dispatcher)
    assert await installer.offer(model_update(model_state(4)))
    assert dispatcher.model_version is None and dispatcher.models.latest_version == 4
    learned = make_dispatcher("lodestar").policy
    assert isinstance(learned, LodestarPolicy) and learned.model_version is None
    dispatcher.swap_policy(learned)
    assert dispatcher.model_version == 4  # the newest good model, at once


def test_undecodable_updates_count_as_rejected(make_dispatcher: Callable[..., Dispatcher]) -> None:
    dispatcher = make_dispatcher("lodestar")
    ModelInstaller(dispatcher.models, dispatcher).undecodable(2)
    assert dispatcher.models.rejected["undecodable"] == 2


def test_store_keeps_metrics_of_recent_versions_only(model_state: StateOf) -> None:
    store = ModelStore(keep=2)
    for v in (1, 2, 3):
        assert store.accept(model_state(v))
    assert store.metrics_of(1) is None and store.metrics_of(3) is not None and store.metrics_of(None) is None
