# syntax=docker/dockerfile:1
#
# The API server as a container image:
#
#   docker build --build-arg MRMAT_VERSION=1.2.3 -t mrmat-ts-api-fastify:1.2.3 .
#   docker run -p 8080:8080 -v mrmat-data:/var/lib/mrmat mrmat-ts-api-fastify:1.2.3
#
# Two stages, so that compilers, TypeScript, npm and the test tools never reach the image that runs.
# test/container/image.test.ts builds this very file and runs the image (read-only, as uid 1000, the
# HEALTHCHECK, SIGTERM, a restart on the same volume, --version).

# Debian (glibc) rather than Alpine: better-sqlite3 and Node's own binaries are built and tested on
# glibc. The runtime is plain Debian slim with only the node binary of the Node image copied in: the
# Node image also carries npm, corepack, yarn and C headers, which the server never uses (~50 MB, and
# npm's own dependencies are most of the image's CVE reports). Both images are the same Debian release,
# so the node binary and the native module built in the first stage run in the second.
# Node 24, the current LTS: the package also runs on Node 20.19+ and 22 (README: Supported Node.js versions), but an
# image is a new deployment, and Node 20 reached its end of life in April 2026.
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

# ---------------------------------------------------------------------------------------------------
# build: all dependencies, the TypeScript compile, and the production node_modules.
FROM ${NODE_IMAGE} AS build

# better-sqlite3 12.x compiles its native addon with node-gyp when no prebuilt binary fits: it needs
# python3, make and g++. Only this stage has them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*

# The node binary the runtime stage gets, without its symbol table and debug information: Node 24's official
# binary carries 18 MB of them (127 MB, 109 MB stripped). JavaScript stack traces are unaffected; only a native
# debugger attached to the process would miss the symbols.
RUN strip --strip-all -o /usr/local/bin/node.stripped /usr/local/bin/node

WORKDIR /build

# The manifests first: the layer of `npm ci` is reused for as long as the dependencies do not change.
COPY package.json package-lock.json ./
# npm ci runs package.json's prepare, which builds tap's plugins only where the tests are: here it does nothing.
COPY scripts/tap-plugins.mjs scripts/
# Dev dependencies too: TypeScript compiles the sources. --ignore-scripts is not used, since
# better-sqlite3's install script is what builds its native addon.
RUN npm ci --no-audit --no-fund

COPY tsconfig.json tsconfig.build.json README.md ./
COPY scripts/stamp-version.mjs scripts/bundle.mjs scripts/code-cache.mjs scripts/precompile-schemas.mjs \
  scripts/start-options.mjs scripts/
COPY src/ src/
COPY plugins/ plugins/
COPY drizzle/ drizzle/

# The release's version, set by the build orchestrator (CI passes the git tag); the build stamps it into
# dist/src/lib/version.json, which --version and the OpenAPI document show. Declared here, after
# `npm ci`, so that a build of another version reuses that layer.
ARG MRMAT_VERSION=0.0.0.dev0

# npm pack runs prepack (a clean build of dist/, stamped with MRMAT_VERSION) and writes the tarball
# that would be published, so the image holds exactly the files the package ships (package.json
# "files"): dist/cli (the bundled command lines), dist/src, dist/plugins, drizzle/ (the migrations
# applied at start), package.json, README.
RUN npm pack --pack-destination /tmp \
    && mkdir /app \
    && tar -xzf /tmp/mrmat-ts-api-fastify-*.tgz -C /app --strip-components=1

# The same node_modules, less the dev dependencies: the native addon built above stays, so the
# runtime stage needs no compiler. The lockfile pins every transitive version, as in development.
# better-sqlite3 keeps its SQLite amalgamation, its C++ sources and the compiler's object files beside
# the one .node file it loads: only build/Release/better_sqlite3.node and lib/ are used at run time.
# --omit=optional leaves out oidc-provider, the development identity provider of `dev`, which must never serve in
# production (and pg-cloudflare, pg's driver for Cloudflare Workers): `dev` in the image fails, saying why.
# OpenTelemetry's packages ship each build three times (CommonJS, which Node loads, and two ES builds for bundlers):
# only the first is kept. Type declarations, source maps and Markdown are for editors and readers, never loaded at run
# time: about 36 MB of node_modules.
RUN npm prune --omit=dev --omit=optional --no-audit --no-fund \
    && rm -rf node_modules/@opentelemetry/*/build/esm node_modules/@opentelemetry/*/build/esnext \
    && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
        -o -name '*.md' \) -delete \
    && cd node_modules/better-sqlite3 \
    && rm -rf deps src build/deps build/Release/obj build/Release/obj.target build/Release/.deps \
        build/Release/test_extension.node \
    && cd /build && mv node_modules /app/node_modules

# ---------------------------------------------------------------------------------------------------
# runtime: Debian slim, the node binary, the package and its production dependencies; no compiler,
# no npm, no cache.
FROM ${RUNTIME_IMAGE} AS runtime

ARG RUNTIME_IMAGE
ARG MRMAT_VERSION=0.0.0.dev0
# What registries and scanners show (OCI image annotations); the version is the one --version prints.
LABEL org.opencontainers.image.title="mrmat-ts-api-fastify" \
      org.opencontainers.image.description="A versioned, authenticated, database-backed REST API on Fastify 5" \
      org.opencontainers.image.version="${MRMAT_VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/MrMatAP/mrmat-ts-api-fastify" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"

COPY --from=build /usr/local/bin/node.stripped /usr/local/bin/node

# The server's defaults for a container, as MRMAT_* variables so that `docker run -e` overrides any of
# them without repeating the rest: every interface (the CLI's default, localhost, is unreachable from
# outside a container), port 8080, and the instance directory (the SQLite database, by default) on
# the volume below.
# MALLOC_ARENA_MAX=2: glibc gives each thread that allocates (V8's compiler and GC helpers, libuv's pool) an arena
# of its own and keeps what they freed; two arenas held the server's resident memory after a load 3 to 8 MB lower
# and steadier, no CPU cost measured (README, Production: Memory).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    MRMAT_HOST=0.0.0.0 \
    MRMAT_PORT=8080 \
    MRMAT_INSTANCE_PATH=/var/lib/mrmat

# Owned by root and so read-only to the server: a compromised process cannot rewrite its own code.
COPY --from=build /app /app

# An unprivileged user, uid 1000 as in the Node image, owns the instance directory and nothing else.
# Docker and podman copy this ownership into a new named volume mounted here. A Debian base without
# the user (the official debian image) gets it; one that has it already (a stand-in) keeps it.
RUN { getent passwd node >/dev/null \
      || { groupadd --gid 1000 node && useradd --uid 1000 --gid node --no-create-home --shell /usr/sbin/nologin node; }; } \
    && mkdir -p /var/lib/mrmat && chown node:node /var/lib/mrmat
VOLUME ["/var/lib/mrmat"]

USER 1000:1000
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
# --max-semi-space-size=8: V8's young generation at most 16 MB rather than 32 (about 13 MB less resident under
# load); --heap-growing-percent=50: a full collection once the old generation has grown by half, not by up to four
# times, so that what load promotes there is collected before it doubles it. No CPU cost measured for either; the
# same options as `npm start` (README, Production: Memory).
ENTRYPOINT ["node", "--max-semi-space-size=8", "--heap-growing-percent=50", "/app/dist/cli/main.js"]
CMD ["serve"]
