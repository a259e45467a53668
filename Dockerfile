# Backprop Playground: one container serves a whole class (see README, "Run the class demo").
# Keep every step plain: tests/deploy/test_docker_recipe.py replays this recipe in a fresh venv.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/playground

# dependency layer first, so code changes do not reinstall it
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY app ./app
COPY static ./static
COPY docs/question.md ./docs/question.md

RUN useradd --create-home --uid 10001 playground && mkdir -p /data && chown playground /data
USER playground
VOLUME /data
ENV PLAYGROUND_STORE=sqlite:////data/playground.sqlite3
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4).status != 200)"]
# one worker per CPU the container may use (--cpus/--cpuset-cpus narrow it; PLAYGROUND_WORKERS sets it)
CMD ["python", "-m", "app.cli", "serve", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
