# One image for every Python process of Portcullis: the control plane, the auth service, the
# suppression lookup and list services, the import worker, migrations, route apply, and the
# renderer of the gateway's nginx.conf (python -m gateway.render). One process a container;
# docker-compose.yml says which. The gateway itself runs in the official OpenResty image.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only the runtime dependencies (pyproject's [project] list), at the versions requirements.lock
# pins: the image carries no test or lint tools.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/runtime.txt', 'w').write('\n'.join(deps))" \
 && pip install --no-cache-dir -c requirements.lock -r /tmp/runtime.txt \
 && rm /tmp/runtime.txt

COPY portcullis ./portcullis
COPY gateway ./gateway
COPY authsvc ./authsvc
COPY services ./services
COPY routes ./routes
COPY nginx.conf ./nginx.conf
COPY lua ./lua

RUN useradd --system --uid 10001 --home-dir /app portcullis
USER portcullis

CMD ["python", "-m", "authsvc", "--host", "0.0.0.0", "--port", "8100"]
