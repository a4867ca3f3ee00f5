# One image for every process of a deployment: the gRPC code server (default command), the
# webserver, the daemon, and the run workers the run launcher starts (K8sRunLauncher pods or
# Celery workers run this same image). Build: docker build -t sync-assets .
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/home \
    SYNC_ASSETS_COMPUTE_LOGS=/opt/dagster/compute_logs \
    SYNC_ASSETS_HOME=/opt/dagster/state

WORKDIR /opt/sync_assets
# The exact versions of uv.lock, as `make` installs them: [s3] for s3:// object storage and
# [celery] for Celery workers (add dagster-k8s to the lock for Kubernetes).
COPY pyproject.toml uv.lock README.md ./
COPY sync_assets ./sync_assets
RUN pip install uv==0.13.9 \
    && UV_PROJECT_ENVIRONMENT=/usr/local uv sync --frozen --no-dev --no-editable --compile-bytecode \
       --extra s3 --extra celery

COPY dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/home/workspace.yaml
RUN useradd --create-home --uid 10001 dagster \
    && mkdir -p /opt/dagster/compute_logs /opt/dagster/state \
    && chown -R dagster /opt/dagster
USER dagster

EXPOSE 4000 3000
CMD ["dagster", "api", "grpc", "-m", "sync_assets", "-h", "0.0.0.0", "-p", "4000"]
