FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/kimibot.db

RUN useradd --create-home --uid 10001 kimibot && mkdir /data && chown kimibot /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY storage ./storage
RUN pip install .

USER kimibot
VOLUME ["/data"]
# Slack HTTP mode listens here (unused in Socket Mode).
EXPOSE 3000
ENTRYPOINT ["kimibot"]
CMD ["run"]
