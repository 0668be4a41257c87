# One image for every service of docker-compose.yml (migrate, workers, beat, Flower).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 app && mkdir -p /data && chown app /data
WORKDIR /app
# Locked, hash-checked dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes -r requirements.lock
# Then the code, installed as a wheel would be (not editable): prompts and migrations are package
# data, and the source copy is removed so nothing can depend on the checkout's layout.
COPY pyproject.toml README.md LICENSE ./
COPY playbook_sync ./playbook_sync
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation . \
    && cd / && rm -rf /app/* && playbook-sync --version
WORKDIR /data
USER app
ENV PLAYBOOK_SYNC_DATA_DIR=/data PYTHONDONTWRITEBYTECODE=1
