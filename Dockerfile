# ckpt in a container. CRIU needs the host's pid namespace and full privileges to dump the host's processes:
# see docker-compose.yml. The image carries its own CRIU (scripts/setup.sh picks or installs one >= 4.2).

# Build stage: dev dependencies and the TypeScript compiler stay here.
FROM node:20-bookworm-slim AS build
WORKDIR /opt/ckpt
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY src src
COPY workers workers
RUN npm run -s build

# Runtime image: production dependencies as locked, the compiled code and what it reads at run time.
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates redis-server nftables iproute2 procps python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ckpt
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error
COPY --from=build /opt/ckpt/dist dist
COPY bin bin
COPY config config
COPY proto proto
COPY scripts scripts
COPY src/dashboard/static src/dashboard/static
# `criu check` needs privileges a build does not have; the service checks CRIU again when it starts.
ENV CKPT_DATA_DIR=/opt/ckpt/.data
# Node's environment: src/app/node-flags.ts (libuv's thread pool, for the commit's flushes).
ENV UV_THREADPOOL_SIZE=16
RUN CKPT_SETUP_SKIP_CRIU_CHECK=1 bash scripts/setup.sh --no-node-modules
EXPOSE 7070
# Node's flags: src/app/node-flags.ts (the scheduler's young generation; harmless for `ckpt worker`).
ENTRYPOINT ["node", "--max-semi-space-size=2", "bin/ckpt.js"]
CMD ["up", "--config", "config/default.yaml"]
