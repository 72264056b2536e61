# The snakepit-perf image used by docker-compose.yml (worker and API).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY snakepit_perf snakepit_perf
COPY api api
COPY schemas schemas
COPY streams streams
COPY store store
COPY sdk sdk
COPY simulator simulator
COPY models models
COPY infra infra
RUN pip install --no-cache-dir .
ENTRYPOINT ["snakepit-perf"]
