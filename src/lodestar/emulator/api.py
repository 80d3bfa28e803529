"""One instance's HTTP API, as vLLM's OpenAI server answers it.

``POST /v1/chat/completions``, ``POST /v1/completions`` (streamed or not), ``GET /v1/models``,
``GET /health``, ``GET /metrics``, and the fault admin routes (``/admin/fault``, see
:mod:`lodestar.emulator.admin`). Checks run in vLLM's order: body (400), model name (404),
output length and context (400), then the engine; the fail fault answers 500 at admission.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response

from lodestar.emulator.admin import admin_router
from lodestar.emulator.metrics import CONTENT_TYPE
from lodestar.emulator.prompts import chat_prompt, completion_prompt, resolve_max_tokens
from lodestar.emulator.protocol import ChatCompletionRequest, CompletionRequest, ModelCard, ModelList
from lodestar.emulator.render import (
    ChatStreamRenderer,
    CompletionStreamRenderer,
    StreamRenderer,
    chat_response,
    completion_response,
    usage,
)
from lodestar.emulator.responses import TokenStreamResponse, WholeResponse
from lodestar.emulator.stream import RequestState
from lodestar.openai_errors import install_error_handlers
from lodestar.workload.request import Prompt

if TYPE_CHECKING:
    from lodestar.emulator.instance import EmulatedInstance


def build_app(instance: EmulatedInstance) -> FastAPI:
    app = FastAPI(
        title=f"Lodestar emulated vLLM · {instance.instance_id}",
        description=f"{instance.spec.hardware_name} serving {instance.model_name} (emulated)",
    )
    install_error_handlers(app)
    app.include_router(admin_router(lambda: instance.faults))

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(instance.metrics_text(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> ModelList:
        card = ModelCard(
            id=instance.model_name, root=instance.spec.profile.model.hf_name, max_model_len=instance.max_model_len
        )
        return ModelList(data=[card])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        model = instance.served_model(body.model)
        return _serve(instance, request, body, chat_prompt(body), model, chat=True)

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> Response:
        model = instance.served_model(body.model)
        return _serve(instance, request, body, completion_prompt(body, instance.vocab_size), model, chat=False)

    return app


def _serve(
    instance: EmulatedInstance,
    request: Request,
    body: ChatCompletionRequest | CompletionRequest,
    prompt: Prompt,
    model: str,
    chat: bool,
) -> Response:
    param = "messages" if chat else "prompt"
    requested = body.requested_max_tokens
    max_tokens = resolve_max_tokens(
        requested, prompt.n_tokens, instance.max_model_len, instance.settings.default_max_tokens, param
    )
    request_id = instance.request_id("chatcmpl" if chat else "cmpl", request.headers.get("x-request-id"))
    created = int(time.time())
    texts = instance.output_texts(request_id, max_tokens)
    if body.stream:
        opts = body.stream_options
        renderer_cls: type[StreamRenderer] = ChatStreamRenderer if chat else CompletionStreamRenderer
        renderer = renderer_cls(
            request_id,
            model,
            created,
            texts,
            prompt.n_tokens,
            include_usage=bool(opts is not None and opts.include_usage),
            continuous_usage=bool(opts is not None and opts.continuous_usage_stats),
        )
        state = instance.admit(prompt, max_tokens, True, requested, param)
        return TokenStreamResponse(state, instance.delivery, renderer, instance.cached_tokens)

    def render_body(state: RequestState) -> bytes:
        used = usage(state.prompt_tokens, state.tokens, instance.cached_tokens(state))
        out = chat_response if chat else completion_response
        return out(request_id, model, created, texts.text(), used).model_dump_json().encode()

    state = instance.admit(prompt, max_tokens, False, requested, param)
    return WholeResponse(state, instance.delivery, render_body)
