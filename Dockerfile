# One image for every service of docker-compose.yml (migrate, workers, beat, Flower).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY playbook_sync ./playbook_sync
COPY worker ./worker
COPY migrations ./migrations
COPY prompts ./prompts
# Editable: migrations/ and prompts/ are found next to the package, as in a checkout.
RUN pip install --no-cache-dir -e .
RUN useradd --create-home --uid 1000 app && mkdir -p /data && chown app /data
USER app
ENV PLAYBOOK_SYNC_DATA_DIR=/data
