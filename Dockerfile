# kimibot in a container: `docker compose up` (see docker-compose.yml) or
#   docker build -t kimibot . && docker run --env-file .env -v kimibot-data:/data kimibot
# Configuration: environment variables (secrets, and KIMIBOT_<SECTION>__<KEY> for any option), and optionally a
# kimibot.toml mounted at /etc/kimibot/kimibot.toml.
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kimibot
ENV PATH=/opt/kimibot/bin:$PATH
WORKDIR /src
# Dependencies in a layer of their own, from pyproject.toml alone: a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = p['optional-dependencies']; print('\n'.join(p['dependencies'] + extras['postgres'] + extras['redis']))" \
    > requirements.txt \
 && pip install -r requirements.txt
COPY README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY storage ./storage
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/kimibot/bin:$PATH \
    DATABASE_URL=sqlite:////data/kimibot.db KIMIBOT_CONFIG=/etc/kimibot/kimibot.toml
RUN useradd --create-home --uid 10001 kimibot && mkdir -p /data /etc/kimibot && chown kimibot /data
COPY --from=build /opt/kimibot /opt/kimibot
USER kimibot
WORKDIR /home/kimibot
VOLUME ["/data"]
# 3000: Slack HTTP mode (unused in Socket Mode). 9090: /healthz, /readyz, /metrics in every mode.
EXPOSE 3000 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=4)"]
ENTRYPOINT ["kimibot"]
# A configuration error is said once, then the container waits (unhealthy) instead of restarting into it again.
CMD ["run", "--on-config-error", "wait"]
