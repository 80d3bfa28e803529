# The Lodestar project image: every service (gateway, router, collector, trainer, history,
# emulated fleet) runs from it with a different command (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# CPU torch from PyTorch's CPU index, first and pinned: installing the project afterwards finds
# torch==2.13.0 satisfied, so pip never pulls a CUDA build from PyPI.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY src ./src
COPY schemas ./schemas
COPY services ./services
COPY infra/clickhouse ./infra/clickhouse
# Editable, so that path lookups relative to the source tree (infra/clickhouse: DDL and
# named queries of the history service) resolve inside /app as they do in a checkout.
RUN pip install -e . \
    && python -c "import torch; assert torch.version.cuda is None, torch.version.cuda" \
    && useradd --system --uid 10001 --home-dir /app lodestar \
    && mkdir -p /app/.lodestar \
    && chown -R lodestar /app/.lodestar

USER lodestar
# gateway 8080, history 8090, router 8091 (+ admin 8095), collector 8092, trainer 8094,
# emulated fleet 8001-8008
EXPOSE 8080 8090 8091 8092 8094 8095 8001-8008
CMD ["lodestar", "--help"]
