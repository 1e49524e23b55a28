# syntax=docker/dockerfile:1
# hotplug-guard: the admission webhook (`hotplug-guard serve`) and the certificate
# manager (`hotplug-guard certs ensure`) in one image.
#
#   scripts/build-image                       # podman, buildah or docker; no daemon needed
#   podman build -t hotplug-guard:0.1.0 .     # the same by hand (buildah build, docker build)
#   podman run --rm -p 8443:8443 hotplug-guard:0.1.0      # offline, local certificate
#
# Stage 1 builds the project's wheel, with the policy engine and the webhook's review
# path compiled by mypyc (setup.py; same behaviour, the engine about five times as fast),
# and downloads the wheels of its dependencies; stage 2 installs them from that
# directory only (--no-index), so the runtime image has no compilers, no build tools
# and no source tree. The compilation is profile-guided (scripts/build-compiled): it
# compiles once with counters, runs the project's policy cases through the engine and
# the webhook's app, and compiles again laid out by the counts; the wheel then takes
# those objects as they are, the same code scripts/check-compiled tests. The build
# stage is the full Python image because it already has the C compiler mypyc needs;
# both are the same Python 3.11 on the same Debian release, so the compiled modules fit
# the runtime.
#
# Every dependency, of the image and of the build, is the version requirements.lock
# (requirements-build.lock) pins, checked against the hashes there (--require-hashes),
# so two builds of one commit install the same files; scripts/lock regenerates the locks.
# --no-deps: the lock is complete (tests/chart/test_lock.py), pip adds nothing of its own.

ARG BUILD_IMAGE=docker.io/library/python:3.11-bookworm
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BUILD_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
# the dependencies go into the build stage too: mypyc type-checks the compiled modules
# against them (orjson's types), and fails without them
RUN pip install --require-hashes --no-deps -r requirements-build.lock \
    && pip download --require-hashes --no-deps --only-binary=:all: --dest /wheels \
        -r requirements.lock \
    && cp requirements.lock /wheels/ \
    && pip install --no-index --find-links /wheels --require-hashes --no-deps \
        -r requirements.lock
COPY pyproject.toml setup.py README.md LICENSE ./
COPY policy/ policy/
COPY webhook/ webhook/
COPY certs/ certs/
COPY controller/ controller/
COPY kubecache/ kubecache/
COPY hotplug_guard/ hotplug_guard/
# the profile's training workload: the policy case files and the objects they name
COPY scripts/build-compiled scripts/pgo_training.py scripts/
COPY examples/ examples/
COPY tests/policy/cases/ tests/policy/cases/
COPY tests/fixtures/kubevirt/ tests/fixtures/kubevirt/
COPY tests/fixtures/vms/ tests/fixtures/vms/
RUN scripts/build-compiled \
    && HOTPLUG_GUARD_MYPYC=1 HOTPLUG_GUARD_PGO=use \
        pip wheel --no-build-isolation --no-deps --wheel-dir /wheels . \
    && sha256sum /wheels/*.whl /wheels/requirements.lock > /wheels/SHA256SUMS

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The checksums of what the install below takes, as a layer of their own (a few KB). A
# layer's content is part of every builder's cache key, but what a bind mount holds is
# not in all of them: podman 4.3 (which builds with buildah 1.28), for one, reuses the
# cached install after the wheels changed, and the image would ship the previous build's
# code. With this file before it, new wheels mean a new install; the install checks them
# too.
COPY --from=build /wheels/SHA256SUMS /usr/local/share/hotplug-guard/wheels.sha256
# the home directory belongs to group 0 too: OpenShift runs the image under an arbitrary
# UID whose group is 0
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    sha256sum --check --quiet /usr/local/share/hotplug-guard/wheels.sha256 \
    && pip install --no-index --find-links /wheels --require-hashes --no-deps \
        -r /wheels/requirements.lock \
    && pip install --no-index --find-links /wheels --no-deps hotplug-guard==0.1.0 \
    && pip check \
    && groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --create-home --home-dir /home/nonroot \
        --shell /usr/sbin/nologin nonroot \
    && chgrp 0 /home/nonroot && chmod g=u /home/nonroot
# numeric, so that Kubernetes' runAsNonRoot can check it (the chart runs as 65532 too,
# except on OpenShift, whose restricted-v2 SCC picks the UID)
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8443
ENTRYPOINT ["hotplug-guard"]
CMD ["serve", "--bind", "0.0.0.0:8443"]
