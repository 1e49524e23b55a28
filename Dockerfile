# syntax=docker/dockerfile:1
# hotplug-guard: the admission webhook (`hotplug-guard serve`) and the certificate
# manager (`hotplug-guard certs ensure`) in one image.
#
#   docker build -t hotplug-guard:0.1.0 .
#   docker run --rm -p 8443:8443 hotplug-guard:0.1.0      # offline, local certificate
#
# Stage 1 builds the project's wheel, with the policy engine compiled by mypyc
# (setup.py; same behaviour, about three times as fast), and collects the wheels of its
# dependencies; stage 2 installs them from that directory only (--no-index), so the
# runtime image has no compilers, no build tools and no source tree.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY policy/ policy/
COPY webhook/ webhook/
COPY certs/ certs/
COPY controller/ controller/
COPY kubecache/ kubecache/
COPY hotplug_guard/ hotplug_guard/
RUN pip install "mypy>=1.11" "setuptools>=68" wheel \
    && HOTPLUG_GUARD_MYPYC=1 pip wheel --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels hotplug-guard \
    && groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --create-home --home-dir /home/nonroot \
        --shell /usr/sbin/nologin nonroot
# numeric, so that Kubernetes' runAsNonRoot can check it (the chart runs as 65532 too)
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8443
ENTRYPOINT ["hotplug-guard"]
CMD ["serve", "--bind", "0.0.0.0:8443"]
