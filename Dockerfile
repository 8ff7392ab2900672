# syntax=docker/dockerfile:1
# The softserve image: one image for every role (docs/DEPLOY.md).
#   serve:   the default command (what `npm start` runs)
#   trainer: npm run trainer
#   migrate: npm run migrate
#
# Build, with the model baked in from a checkpoint directory outside the
# repository (a BuildKit named context):
#   docker build --build-context model=../shared/models/stories260k -t softserve:0.1.0 .
# Without a model (mount one at /models/model instead):
#   docker build --target runtime -t softserve:0.1.0-nomodel .
# CUDA execution provider libraries (needs network at build time, and a base
# image with CUDA 12 and cuDNN 9 at run time):
#   docker build --build-arg ONNXRUNTIME_NODE_INSTALL=cuda12 ...

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- dependencies: production only, native modules compiled here ----
FROM ${NODE_IMAGE} AS deps
# better-sqlite3 compiles from source when no prebuilt binary fits.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# .npmrc skips onnxruntime-node's CUDA download (the CPU build is bundled).
COPY package.json package-lock.json .npmrc ./
# tsx is a runtime dependency: the server runs its TypeScript directly.
RUN npm ci --omit=dev --no-audit --no-fund
ARG ONNXRUNTIME_NODE_INSTALL=
RUN if [ -n "$ONNXRUNTIME_NODE_INSTALL" ]; then node node_modules/onnxruntime-node/script/install.js; fi

# ---- the product, no model ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    SOFTSERVE_HOST=0.0.0.0 \
    SOFTSERVE_PORT=8080 \
    SOFTSERVE_DATA_DIR=/data \
    SOFTSERVE_MODEL_DIR=/models/model
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json .npmrc tsconfig.json ./
COPY bin ./bin
COPY cli ./cli
COPY kernels ./kernels
COPY models ./models
COPY prompts ./prompts
COPY server ./server
# SQLite data (single-process deployments); a fleet keeps its state in PostgreSQL.
RUN mkdir -p /data /models && chown node:node /data
# The node image's unprivileged user (uid 1000).
USER node
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.SOFTSERVE_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# Node itself, not npm, is the container's process: SIGTERM reaches the server, which drains.
CMD ["node", "--import", "tsx", "server/main.ts"]

# ---- the product with its model (the default target) ----
FROM runtime AS with-model
COPY --from=model . /models/model
