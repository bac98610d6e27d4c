# plancheck's HTTP service, and the same image for the nightly batch (docs/install.md: Docker).
#
#   docker build -t plancheck .
#   docker run -d -p 8080:8080 -v "$PWD/token:/run/secrets/plancheck-token:ro" plancheck
#
# The service refuses to listen beyond loopback without a bearer token: mount a file holding one (16+ printable
# characters) at /run/secrets/plancheck-token (a Docker or Compose secret lands there too). Rules and plans are the
# ones the wheel carries unless PLANCHECK_HOME names a mounted directory (`plancheck init` writes one).

# Build stage: wheels for plancheck and every dependency. durable-rules has no wheel on the package index and
# compiles its C core, so the compiler stays in this stage.
FROM python:3.12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY src src
COPY rules rules
COPY plans plans
COPY samples samples
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[service,history]'

# Runtime stage: the wheels installed, no compiler, a user without privileges.
FROM python:3.12-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin plancheck \
 && mkdir /data && chown plancheck:plancheck /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'plancheck[service,history]' \
 && rm -rf /wheels
USER plancheck
WORKDIR /data
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["plancheck", "serve", "--host", "0.0.0.0", "--port", "8080", "--token-file", "/run/secrets/plancheck-token"]
