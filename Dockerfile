# ckpt in a container. CRIU needs the host's pid namespace and full privileges to dump the host's processes:
# see docker-compose.yml. The image carries its own CRIU (scripts/setup.sh picks or installs one >= 4.2).
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates redis-server nftables iproute2 procps python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ckpt
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --loglevel=error
COPY . .
# `criu check` needs privileges a build does not have; the service checks CRIU again when it starts.
ENV CKPT_DATA_DIR=/opt/ckpt/.data CKPT_SETUP_SKIP_CRIU_CHECK=1
RUN bash scripts/setup.sh && npm run build
ENV CKPT_SETUP_SKIP_CRIU_CHECK=
EXPOSE 7070
ENTRYPOINT ["node", "bin/ckpt.js"]
CMD ["up", "--config", "config/default.yaml"]
