# syntax=docker/dockerfile:1
# The phone agent as a container: `python agent.py start` against your LiveKit project.
#
#   docker build -t telephony-agent .
#   docker run --rm --env-file .env.local --stop-timeout 630 -e METRICS_PORT=9100 -p 9100:9100 telephony-agent
#
# METRICS_PORT=9100 serves Prometheus metrics at :9100/metrics (README "Watching your calls").
#
# Settings come from the environment at run time (--env-file); no .env file is baked in.
# uv comes from PyPI (pip install uv); nothing else is downloaded but the locked packages.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ------------------------------------------------------------------ builder
FROM ${PYTHON_IMAGE} AS builder

# HF_HOME: model files that plugins fetch (download-files) land inside /app, so the
# runtime stage gets them with the rest of the app.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_CACHE_DIR=/root/.cache/uv \
    HF_HOME=/app/.cache/huggingface

RUN pip install uv

WORKDIR /app

# Dependencies first: this layer is rebuilt only when pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project

COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev

# Fetch model files at build time, so a call never waits on a download.
RUN uv run --locked --no-dev python agent.py download-files

# ------------------------------------------------------------------ runtime
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    HF_HOME=/app/.cache/huggingface

RUN groupadd --system --gid 10001 agent \
    && useradd --system --uid 10001 --gid agent --create-home --home-dir /home/agent agent

WORKDIR /app
# Owned by root, read-only for the agent user.
COPY --from=builder /app /app
# Call records (the SQLite default and the spool) are the only thing the agent writes:
# give it that folder, and keep it on a volume so records outlive the container.
RUN mkdir -p /app/data && chown agent:agent /app/data
VOLUME ["/app/data"]

USER agent

# `start` serves a health check on port 8081: GET / answers 200 "OK" while the worker is healthy.
EXPOSE 8081
# Prometheus /metrics, when METRICS_PORT=9100 is set (the run line above).
EXPOSE 9100
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/', timeout=4)"]

# On SIGTERM the worker stops taking new calls and lets the running ones finish, for up to
# DRAIN_TIMEOUT_SECONDS (default 600); then each call still running hears
# prompts/shutdown_goodbye.txt and is hung up, its record saying `worker-stopped`; a second
# SIGTERM does that at once. Docker waits only 10 s before its SIGKILL, which cuts calls with
# no goodbye and no complete record: give the container DRAIN_TIMEOUT_SECONDS + 30 s,
# `docker run --stop-timeout 630` / `docker stop -t 630`, Compose `stop_grace_period: 630s`,
# Kubernetes `terminationGracePeriodSeconds: 630` (README "Deploying").
STOPSIGNAL SIGTERM
CMD ["python", "agent.py", "start"]
