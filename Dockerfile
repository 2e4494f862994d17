# One image for every Switchyard container; docker-compose.yml picks each container's roles
# with SWITCHYARD_ROLES. Tokens and passwords come from the environment at run time, never
# from the image. test/deploy/image-build.e2e.spec.ts runs the build stage's COPY and RUN
# lines without Docker: keep them plain (one source per COPY, no shell tricks).

# Build: everything installed (the compiler is a dev dependency), the launcher compiled with
# every project it references (all libs and apps; not the benchmarks or the test suites),
# the console's static assets (the gateway serves them at /ui), then the dev dependencies dropped.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY tsconfig.base.json ./
COPY libs ./libs
COPY apps ./apps
RUN npm ci --no-audit --no-fund
RUN npx tsc -b apps/launcher
RUN npm run build -w @switchyard/console
RUN npm prune --omit=dev --no-audit --no-fund

# Run: the build's tree, owned by root and read-only to the unprivileged `node` user, which
# may write only its data directory (FILESYSTEM_ROOT, the health file in /tmp).
FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    DATA_DIR=/app/.data \
    FILESYSTEM_ROOT=/app/.data/files \
    SWITCHYARD_HEALTH_FILE=/tmp/switchyard-health.json
WORKDIR /app
COPY --from=build /app /app
RUN mkdir -p /app/.data/files && chown -R node:node /app/.data
USER node
EXPOSE 10000 5001-5007 6001-6006
HEALTHCHECK --interval=15s --timeout=10s --start-period=120s --retries=3 CMD ["node", "apps/launcher/dist/healthcheck.js"]
CMD ["node", "apps/launcher/dist/main.js"]
