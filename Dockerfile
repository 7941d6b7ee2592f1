# syntax=docker/dockerfile:1
#
# The API server as a container image:
#
#   docker build -t mrmat-ts-api-fastify .
#   docker run -p 8080:8080 -v mrmat-data:/var/lib/mrmat mrmat-ts-api-fastify
#
# Two stages, so that compilers, TypeScript and the test tools never reach the image that runs.
# test/package.test.ts reproduces what this file does without a Docker engine: it packs the package,
# installs it with production dependencies only, starts the installed bin and checks healthz and
# the migrations.

# Debian (glibc) rather than Alpine: better-sqlite3 and Node's own binaries are built and tested on
# glibc. The same base in both stages, so the native module built in the first runs in the second.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------------
# build: all dependencies, the TypeScript compile, and the production node_modules.
FROM ${NODE_IMAGE} AS build

# better-sqlite3 12.x compiles its native addon with node-gyp when no prebuilt binary fits: it needs
# python3, make and g++. Only this stage has them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# The manifests first: the layer of `npm ci` is reused for as long as the dependencies do not change.
COPY package.json package-lock.json ./
# Dev dependencies too: TypeScript compiles the sources. --ignore-scripts is not used, since
# better-sqlite3's install script is what builds its native addon.
RUN npm ci --no-audit --no-fund

COPY tsconfig.json tsconfig.build.json README.md ./
COPY src/ src/
COPY plugins/ plugins/
COPY drizzle/ drizzle/
COPY scripts/bundle.mjs scripts/

# npm pack runs prepack (a clean build of dist/) and writes the tarball that would be published, so
# the image holds exactly the files the package ships (package.json "files"): dist/cli (the bundled command
# lines), dist/src, dist/plugins,
# drizzle/ (the migrations the server applies at start), package.json and the README.
RUN npm pack --pack-destination /tmp \
    && mkdir /app \
    && tar -xzf /tmp/mrmat-ts-api-fastify-*.tgz -C /app --strip-components=1

# The same node_modules, less the dev dependencies: the native addon built above stays, so the
# runtime stage needs no compiler. The lockfile pins every transitive version, as in development.
RUN npm prune --omit=dev --no-audit --no-fund \
    && mv node_modules /app/node_modules

# ---------------------------------------------------------------------------------------------------
# runtime: Node, the package and its production dependencies; no compiler, no npm cache.
FROM ${NODE_IMAGE} AS runtime

# The server's defaults for a container, as MRMAT_* variables so that `docker run -e` overrides any of
# them without repeating the rest: every interface (the CLI's default, localhost, is unreachable from
# outside a container), port 8080, and the instance directory (the SQLite database, by default) on
# the volume below.
ENV NODE_ENV=production \
    MRMAT_HOST=0.0.0.0 \
    MRMAT_PORT=8080 \
    MRMAT_INSTANCE_PATH=/var/lib/mrmat

# Owned by root and so read-only to the server: a compromised process cannot rewrite its own code.
COPY --from=build /app /app

# The node image's own unprivileged user (uid 1000) owns the instance directory and nothing else.
# Docker copies this ownership into a new named volume mounted here.
RUN mkdir -p /var/lib/mrmat && chown node:node /var/lib/mrmat
VOLUME ["/var/lib/mrmat"]

USER node
WORKDIR /app
EXPOSE 8080

# The slim image has no curl or wget: Node's own fetch asks the liveness route, and any failure,
# refusal or non-2xx answer marks the container unhealthy. MRMAT_PORT, so that -e MRMAT_PORT=… works.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.MRMAT_PORT ?? 8080}/healthz/liveness`, { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node itself, not npm start: signals (docker stop's SIGTERM) reach the server directly, which then
# drains its connections and closes the database. `serve`, the default command, applies the pending
# migrations before listening. Arguments given to `docker run` replace CMD, e.g. `migrate` or
# `serve --db postgres://…`; configuration also comes from MRMAT_* variables (-e) or --config.
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve"]
