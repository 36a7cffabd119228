# The drip image: one image, every process (api, scheduler, worker, migrate) chosen by its command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 10001 drip
# The pinned, hashed dependency set first (its layer is reused while the lock is unchanged),
# then drip itself without dependencies: pip checks hashes only with every requirement pinned.
COPY requirements/app.txt ./requirements/app.txt
RUN pip install --require-hashes -r requirements/app.txt
COPY pyproject.toml README.md ./
COPY drip ./drip
COPY migrations ./migrations
RUN pip install --no-deps .
COPY sequences ./sequences
USER drip
EXPOSE 8000
CMD ["drip", "api", "--host", "0.0.0.0", "--port", "8000"]
