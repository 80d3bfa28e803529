"""One emulated vLLM instance: the object graph behind one port.

Engine (the shared model, unchanged) → :class:`EngineDriver` (real time) → requests'
:class:`RequestState` channels → ASGI responses; :class:`InstanceMetrics` fed by the driver and
exposed by a per-instance registry; a :class:`FaultInjector`; the FastAPI app and the
:class:`InstanceServer` that serves it.
"""

from __future__ import annotations

import itertools
import random
from http import HTTPStatus
from typing import Any

import xxhash

from lodestar.cluster.spec import InstanceSpec
from lodestar.emulator.api import build_app
from lodestar.emulator.clock import VirtualClock
from lodestar.emulator.driver import EngineDriver
from lodestar.emulator.faults import FaultInjector
from lodestar.emulator.lag import LagMonitor
from lodestar.emulator.metrics import EmulatorGauges, InstanceMetrics, MetricsCollector
from lodestar.emulator.output_text import OutputText
from lodestar.emulator.prompts import block_hashes
from lodestar.emulator.responses import DeliveryContext
from lodestar.emulator.server import InstanceServer
from lodestar.emulator.settings import EmulatorSettings
from lodestar.emulator.stream import CloseReason, RequestState
from lodestar.engine.engine import Engine, RequestRejectedError
from lodestar.openai_errors import OpenAIError, context_too_long, model_not_found
from lodestar.workload.request import Prompt

_FAULT_DROPS = (CloseReason.DROPPED, CloseReason.GONE)


class EmulatedInstance:
    def __init__(
        self, spec: InstanceSpec, port: int, settings: EmulatorSettings, clock: VirtualClock, log: Any
    ) -> None:
        profile = spec.profile
        self.spec = spec
        self.instance_id = spec.instance_id
        self.model_name = profile.model.name
        self.max_model_len = profile.context_limit
        self.vocab_size = profile.model.vocab_size
        self.settings = settings
        self.clock = clock
        self.log = log.bind(instance=spec.instance_id)
        self.engine = Engine(profile)
        self.metrics = InstanceMetrics(max_model_len=self.max_model_len)
        self.lag = LagMonitor(
            self.metrics, self.log, settings.lag_warn_s, settings.lag_report_every_s, settings.time_scale
        )
        self.driver = EngineDriver(self.engine, clock, self.metrics, self.lag)
        self.delivery = DeliveryContext(clock, self.lag, self.release)
        self.server = InstanceServer(build_app(self), settings.host, port, spec.instance_id)
        self.faults = FaultInjector(
            self.driver, self.server, clock, self.metrics, f"{settings.seed}:{spec.instance_id}", self.log
        )
        self.collector = MetricsCollector(
            self.metrics,
            self.model_name,
            self.driver.snapshot,
            self._gauges,
            cache_info={
                "block_size": str(profile.block_size),
                "cache_dtype": "auto",
                "enable_prefix_caching": str(profile.enable_prefix_caching),
                "gpu_memory_utilization": str(profile.gpu_memory_utilization),
                "num_cpu_blocks": "None",
                "num_gpu_blocks": str(profile.num_gpu_blocks),
                "num_gpu_blocks_override": str(profile.num_gpu_blocks_override),
            },
            info={
                "instance_id": spec.instance_id,
                "hardware": spec.hardware_name,
                "model": self.model_name,
                "tp": str(profile.tp),
                "time_scale": str(settings.time_scale),
            },
        )
        self._ids = random.Random(f"{settings.seed}:{spec.instance_id}:ids")
        self._seq = itertools.count()

    @property
    def url(self) -> str:
        return self.server.url

    # --- lifecycle ---------------------------------------------------------------------------

    def bind(self) -> None:
        self.server.bind()

    def start(self) -> None:
        self.driver.start()
        self.server.start()

    async def stop(self) -> None:
        self.faults.close()
        self.driver.close_all(CloseReason.SHUTDOWN)
        await self.server.stop()
        await self.driver.stop()

    # --- what the API calls ------------------------------------------------------------------

    def served_model(self, requested: str | None) -> str:
        if requested is not None and requested != self.model_name:
            raise model_not_found(requested)
        return self.model_name

    def request_id(self, prefix: str, given: str | None) -> str:
        """vLLM's ids: ``<prefix>-<X-Request-Id header or 16 hex digits>``."""
        return f"{prefix}-{given or f'{self._ids.getrandbits(64):016x}'}"

    def output_texts(self, request_id: str, n_tokens: int) -> OutputText:
        """Deterministic words, one token each, seeded by the request id (made lazily)."""
        return OutputText(xxhash.xxh32_intdigest(f"{self.settings.seed}:{request_id}".encode()), n_tokens)

    def admit(
        self, prompt: Prompt, max_tokens: int, stream: bool, requested: int | None, prompt_param: str
    ) -> RequestState:
        """Put a request into the engine now; raises :class:`OpenAIError` (500 by the fail fault,
        400 when it does not fit ``max_model_len``)."""
        if self.faults.should_fail():
            raise OpenAIError(
                HTTPStatus.INTERNAL_SERVER_ERROR, "injected fault: the emulated engine failed this request"
            )
        state = RequestState(f"r{next(self._seq)}", prompt.n_tokens, max_tokens, stream)
        try:
            self.driver.submit(state, block_hashes(prompt, self.engine.block_size))
        except RequestRejectedError:
            raise context_too_long(
                self.max_model_len, prompt.n_tokens, max_tokens if requested is not None else None, prompt_param
            ) from None
        self.faults.arm_drop(state)
        return state

    def release(self, state: RequestState) -> None:
        """A response is done with ``state``: abort it if unfinished, count fault drops."""
        if state.finished is None:
            self.driver.abort(state)
        if state.closed in _FAULT_DROPS:
            self.metrics.dropped_streams += 1

    def cached_tokens(self, state: RequestState) -> int | None:
        if not self.settings.enable_prompt_tokens_details or state.finished is None:
            return None
        return state.finished.prefix_hit_tokens

    def metrics_text(self) -> bytes:
        return self.collector.text()

    def _gauges(self) -> EmulatorGauges:
        status = self.faults.status()
        return EmulatorGauges(
            virtual_time_s=status.now_s,
            lag_s=self.lag.last_lag_s,
            speed_factor=status.speed_factor,
            fail_fraction=status.fail_fraction,
            drop_fraction=status.drop_fraction,
            stalled=status.stalled_until_s is not None,
        )
