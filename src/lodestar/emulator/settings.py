"""Emulator settings: environment (prefix ``LODESTAR_EMULATOR_``) overridden by CLI options."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LODESTAR_EMULATOR_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="address every instance listens on")
    time_scale: Annotated[float, Field(ge=1.0)] = Field(
        default=1.0, description="wall seconds per emulated second (>= 1 slows everything uniformly)"
    )
    default_max_tokens: Annotated[int, Field(ge=1)] = Field(
        default=128,
        description="tokens generated for a chat request without max_tokens (vLLM would run to EOS); "
        "completions without max_tokens get 16, as in vLLM",
    )
    seed: int = Field(default=0, description="seeds request ids, output text and fault decisions")
    lag_warn_s: Annotated[float, Field(gt=0)] = Field(
        default=0.05, description="warn when an engine step is applied this many wall seconds late"
    )
    lag_report_every_s: Annotated[float, Field(gt=0)] = Field(
        default=5.0, description="at most one lag warning per instance per this many wall seconds"
    )
    enable_prompt_tokens_details: bool = Field(
        default=False, description="report usage.prompt_tokens_details.cached_tokens (vLLM's flag of that name)"
    )
    log_level: str = "INFO"
    json_logs: bool = True
