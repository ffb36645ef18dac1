# Base image for Celery services traced by otel-celery-launch.
#   docker run IMAGE celery -A tasks worker          (env-only config: OTEL_* variables)
#   docker run -v ./worker.yaml:/etc/otel/worker.yaml -e OTEL_CELERY_LAUNCH_CONFIG=/etc/otel/worker.yaml IMAGE celery -A tasks worker
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY otel_celery_launch ./otel_celery_launch
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 app

USER 10001
WORKDIR /app
ENTRYPOINT ["otel-celery-launch", "--"]
CMD ["celery", "--help"]
