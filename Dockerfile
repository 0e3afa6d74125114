# The one image every application service of docker-compose.yml runs: migrate, worker, beat,
# webhooks, console, flower and the stub provider. Build: docker build -t interaction-service .
# It holds the product only: the development tools (devtools/, the stub provider among them),
# the tests and the benchmarks stay out, and so does the test extra.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY config ./config
COPY models ./models
COPY providers ./providers
COPY services ./services
COPY tasks ./tasks
COPY workers ./workers
COPY broker ./broker
COPY telemetry ./telemetry
# A regular (not editable) install: the image holds the package and its data, not the tree.
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INTERACTIONS_VAR_DIR=/var/lib/interactions/var
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/interactions interactions \
    && mkdir -p /var/lib/interactions/var /var/lib/interactions/metrics /var/lib/interactions/beat \
    && chown -R interactions:interactions /var/lib/interactions
COPY --from=build /opt/venv /opt/venv
USER interactions
WORKDIR /var/lib/interactions
# 8000: the webhook app (gunicorn); 8001: the support console (gunicorn); 5555: Flower;
# 6011: the stub provider (dev profile only, run from the checkout's devtools/).
EXPOSE 8000 8001 5555 6011
CMD ["interactions", "--help"]
