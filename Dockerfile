# syntax=docker/dockerfile:1
#
# nodepool-launcher container image.
#
#   docker build -t nodepool .
#   docker run -v /srv/nodepool/etc:/etc/nodepool:ro -p 8005:8005 nodepool
#
# Configuration, ZooKeeper certificates and cloud credentials are mounted at
# run time; nothing secret is baked into the image.  Extra arguments replace
# the default "-c /etc/nodepool/nodepool.yaml" (e.g. to add "-s SECURE").

# -- builder: the project's wheel and the wheels of all its dependencies -----
FROM python:3.11-slim-bookworm AS builder

WORKDIR /src
COPY pyproject.toml setup.cfg requirements.txt README.rst LICENSE ./
COPY nodepool ./nodepool
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# -- runtime: Python and the wheels, nothing else -----------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Installed from the builder's wheels only (no index), through a bind mount
# so the wheels never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels \
        /wheels/nodepool-*.whl

# An unprivileged user with a fixed uid (for runAsNonRoot and volume
# ownership); its home holds SDK credential files such as ~/.aws if mounted.
RUN useradd --system --uid 10001 --user-group \
        --home-dir /var/lib/nodepool --create-home nodepool \
    && install -d -o nodepool -g nodepool /etc/nodepool \
        /var/log/nodepool /var/run/nodepool

USER 10001
WORKDIR /var/lib/nodepool

# The web app (webapp.port); GET /ready is the readiness probe.
EXPOSE 8005

ENTRYPOINT ["nodepool-launcher", "-f"]
CMD ["-c", "/etc/nodepool/nodepool.yaml"]
