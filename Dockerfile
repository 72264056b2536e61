# The snakepit-perf image used by docker-compose.yml (worker and API, dashboard included).
FROM node:20-slim AS dashboard
WORKDIR /dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY snakepit_perf snakepit_perf
COPY api api
COPY schemas schemas
COPY streams streams
COPY store store
COPY runners runners
COPY query query
COPY sdk sdk
COPY simulator simulator
COPY models models
COPY infra infra
COPY dashboard/static dashboard/static
COPY --from=dashboard /dashboard/node_modules dashboard/node_modules
# Editable, so the API finds the dashboard's files next to its package (/app/dashboard).
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["snakepit-perf"]
