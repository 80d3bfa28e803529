"""Hardware and model profiles (YAML data shipped in ``profiles/``) and the derived instance profile.

An :class:`InstanceProfile` is one vLLM instance: a model on ``tp`` GPUs of one kind, with the
scheduler limits vLLM would pick and the KV capacity it would find.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

GIB = 1024**3
BYTES_PER_PARAM = 2  # BF16 weights and KV cache


class HardwareProfile(BaseModel):
    """One GPU kind: datasheet peaks, fitted efficiencies, vLLM's default batch limits for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    tflops_bf16: PositiveFloat
    hbm_tb_s: PositiveFloat
    usable_memory_gib: PositiveFloat
    compute_eff: Annotated[float, Field(gt=0, le=1)]
    memory_eff: Annotated[float, Field(gt=0, le=1)]
    roofline_p: Annotated[float, Field(ge=1)]
    allreduce_latency_us: Annotated[float, Field(ge=0)]
    interconnect_gb_s: PositiveFloat
    max_num_batched_tokens: PositiveInt
    max_num_seqs: PositiveInt


class ModelProfile(BaseModel):
    """A decoder-only transformer's shape (from its Hugging Face config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    hf_name: str
    num_layers: PositiveInt
    hidden_size: PositiveInt
    num_heads: PositiveInt
    num_kv_heads: PositiveInt
    head_dim: PositiveInt
    intermediate_size: PositiveInt
    vocab_size: PositiveInt
    max_position_embeddings: PositiveInt

    @property
    def layer_params(self) -> int:
        """Parameters of all transformer layers (attention projections + gated MLP)."""
        d, hd = self.hidden_size, self.head_dim
        attn = d * self.num_heads * hd * 2 + d * self.num_kv_heads * hd * 2
        mlp = 3 * d * self.intermediate_size
        return self.num_layers * (attn + mlp)

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        """Layers + input embedding + untied LM head."""
        return self.layer_params + 2 * self.embedding_params

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V for every layer: 2 × layers × KV heads × head_dim × 2 bytes."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * BYTES_PER_PARAM


class InstanceProfile(BaseModel):
    """One serving instance: ``model`` on ``tp`` × ``hardware``, with vLLM engine arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: HardwareProfile
    model: ModelProfile
    tp: PositiveInt = 1
    block_size: PositiveInt = 16
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    activation_reserve_gib: Annotated[float, Field(ge=0)] = 1.5
    max_num_batched_tokens: PositiveInt | None = None
    max_num_seqs: PositiveInt | None = None
    max_model_len: PositiveInt | None = None
    enable_prefix_caching: bool = True
    num_gpu_blocks_override: PositiveInt | None = None
    api_overhead_s: Annotated[float, Field(ge=0)] = 0.005
    step_overhead_s: Annotated[float, Field(ge=0)] = 0.0005
    per_seq_overhead_s: Annotated[float, Field(ge=0)] = 0.00001

    @property
    def batched_tokens(self) -> int:
        return self.max_num_batched_tokens or self.hardware.max_num_batched_tokens

    @property
    def seqs_limit(self) -> int:
        return self.max_num_seqs or self.hardware.max_num_seqs

    @property
    def weight_bytes_per_gpu(self) -> float:
        return self.model.total_params * BYTES_PER_PARAM / self.tp

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens of KV cache vLLM would allocate: what is left of ``gpu_memory_utilization`` ×
        memory after weights and the activation reserve, on every GPU, over KV bytes per token."""
        per_gpu = (
            self.hardware.usable_memory_gib * GIB * self.gpu_memory_utilization
            - self.weight_bytes_per_gpu
            - self.activation_reserve_gib * GIB
        )
        if per_gpu <= 0:
            return 0
        return int(per_gpu * self.tp // self.model.kv_bytes_per_token)

    @property
    def num_gpu_blocks(self) -> int:
        """KV blocks: vLLM's ``--num-gpu-blocks-override`` if set, else from memory."""
        if self.num_gpu_blocks_override is not None:
            return self.num_gpu_blocks_override
        return self.kv_capacity_tokens // self.block_size

    @property
    def context_limit(self) -> int:
        """The instance's max_model_len: the configured one, else the model's, capped by KV capacity
        (vLLM refuses to start when one sequence cannot fit; operators lower max_model_len)."""
        wanted = self.max_model_len or self.model.max_position_embeddings
        return min(wanted, self.num_gpu_blocks * self.block_size)

    @property
    def label(self) -> str:
        tp = f"-tp{self.tp}" if self.tp > 1 else ""
        return f"{self.model.name}@{self.hardware.name}{tp}"


def _load_yaml(name: str) -> dict[str, dict[str, object]]:
    text = resources.files("lodestar.engine").joinpath("profiles", name).read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"profile file {name} must map names to profiles")
    return data


@functools.cache
def hardware_profiles() -> dict[str, HardwareProfile]:
    return {k: HardwareProfile(name=k, **v) for k, v in _load_yaml("hardware.yaml").items()}


@functools.cache
def model_profiles() -> dict[str, ModelProfile]:
    return {k: ModelProfile(name=k, **v) for k, v in _load_yaml("models.yaml").items()}


class UnknownProfileError(KeyError):
    """A hardware or model name that no profile defines."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")
        self.kind = kind
        self.name = name


def hardware(name: str) -> HardwareProfile:
    profiles = hardware_profiles()
    if name not in profiles:
        raise UnknownProfileError("hardware", name, list(profiles))
    return profiles[name]


def model(name: str) -> ModelProfile:
    profiles = model_profiles()
    if name not in profiles:
        raise UnknownProfileError("model", name, list(profiles))
    return profiles[name]


def instance_profile(hardware_name: str, model_name: str, tp: int = 1, **engine_args: object) -> InstanceProfile:
    """Build an instance profile by names; ``engine_args`` override vLLM engine arguments."""
    return InstanceProfile(hardware=hardware(hardware_name), model=model(model_name), tp=tp, **engine_args)
