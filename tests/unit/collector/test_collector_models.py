"""/v1/models bodies → model and max_model_len."""

from __future__ import annotations

import pytest

from lodestar_collector.models_api import ModelInfo, ModelInfoError, parse_models

VLLM_BODY = (
    '{"object":"list","data":[{"id":"llama-3-8b","object":"model","created":1795911075,"owned_by":"vllm",'
    '"root":"meta-llama/Llama-3.1-8B-Instruct","parent":null,"max_model_len":131072}]}'
)  # captured from `lodestar emulate` (vLLM's shape)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(VLLM_BODY, ModelInfo("llama-3-8b", 131072), id="vllm"),
        pytest.param(
            '{"data":[{"id":"sql-lora","parent":"base","max_model_len":4096},{"id":"base","max_model_len":8192}]}',
            ModelInfo("base", 8192),
            id="lora-adapter-listed-first",
        ),
        pytest.param('{"data":[{"id":"m"}]}', ModelInfo("m", None), id="no-max-model-len"),
    ],
)
def test_parse_models(body: str, expected: ModelInfo) -> None:
    assert parse_models(body) == expected


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("not json", "invalid /v1/models"),
        ('{"data":[]}', "data"),
        ('{"data":[{"id":""}]}', "data.0.id"),
        ('{"data":[{"id":"m","max_model_len":0}]}', "max_model_len"),
    ],
)
def test_bad_bodies(body: str, fragment: str) -> None:
    with pytest.raises(ModelInfoError, match=fragment):
        parse_models(body)
