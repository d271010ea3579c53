# Custos API and worker image. Build: docker build -t custos .
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CUSTOS_ENVIRONMENT=production \
    CUSTOS_MIGRATIONS_DIR=/app/migrations
WORKDIR /app
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl \
    && useradd --system --uid 10001 --home-dir /app custos
COPY migrations ./migrations
USER custos
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
# `custos migrate` and `custos worker` run from the same image (see compose.yaml).
CMD ["custos", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
