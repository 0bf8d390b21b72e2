# ead-connector service image.
#
#   docker build -t ead-connector .
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/config:/etc/ead-connector:ro" -v ead-data:/var/lib/ead-connector \
#     -e CONNECTOR_KEY_PASSPHRASE -e CONNECTOR_ADMIN_TOKEN ead-connector
#
# Migrate the database first (and after each upgrade of the image):
#   docker run --rm -v "$PWD/config:/etc/ead-connector:ro" -v ead-data:/var/lib/ead-connector \
#     ead-connector db upgrade
#
# The dependencies come from the hash-locked requirements/runtime.lock; the image runs as an
# unprivileged user, keeps its state under /var/lib/ead-connector and reads its
# configuration from /etc/ead-connector/connector.toml (CONNECTOR_CONFIG).

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements/runtime.lock requirements/runtime.lock
RUN python -m venv /opt/ead-connector \
    && /opt/ead-connector/bin/pip install --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md LICENSE ./
COPY connector connector
COPY xsd xsd
COPY config/checks config/checks
RUN /opt/ead-connector/bin/pip install --no-deps . \
    && /opt/ead-connector/bin/python -m compileall -q /opt/ead-connector

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="ead-connector" \
      org.opencontainers.image.description="Electronic advance data between postal operators and Customs" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 connector \
    && useradd --system --uid 10001 --gid connector --home-dir /var/lib/ead-connector connector \
    && install -d -o connector -g connector -m 0750 /var/lib/ead-connector /etc/ead-connector
COPY --from=build /opt/ead-connector /opt/ead-connector
ENV PATH=/opt/ead-connector/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CONNECTOR_CONFIG=/etc/ead-connector/connector.toml \
    CONNECTOR_HTTP__HOST=0.0.0.0 \
    CONNECTOR_DATABASE_URL=sqlite+aiosqlite:////var/lib/ead-connector/ead-connector.db
USER connector
WORKDIR /var/lib/ead-connector
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["ead-connector", "check"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["ead-connector"]
CMD ["run"]
