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
COPY pyproject.toml README.md ./
COPY sync_assets ./sync_assets
# [s3] for s3:// object storage; add dagster-k8s or dagster-celery[flower,redis] for those launchers.
RUN pip install '.[s3]'

COPY dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/home/workspace.yaml
RUN useradd --create-home --uid 10001 dagster \
    && mkdir -p /opt/dagster/compute_logs /opt/dagster/state \
    && chown -R dagster /opt/dagster
USER dagster

EXPOSE 4000 3000
CMD ["dagster", "api", "grpc", "-m", "sync_assets", "-h", "0.0.0.0", "-p", "4000"]
