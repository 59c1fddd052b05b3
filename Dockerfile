# waygate container image.
#
#   docker build -t waygate .            (podman: podman build --format docker -t waygate .
#                                          --format docker keeps the HEALTHCHECK; OCI images drop it)
#   docker run --init -p 8080:8080 -p 8443:8443 -v "$PWD/routes:/app/routes:ro" waygate
#
# /app/routes  routes files (*.yaml), read-only is fine; changes apply on SIGHUP (docker kill -s HUP).
# /app/certs   certificates; must be writable when waygate has to generate the self-signed
#              localhost certificate or the sticky-session secret (.waygate-secret).
# /app/waygate.yaml  optional static config (mount a file there).
# The admin API stays on 127.0.0.1:9901 inside the container (the HEALTHCHECK uses it). To
# publish it, set WAYGATE_ADMIN=0.0.0.0:9901 and WAYGATE_ADMIN_TOKEN (required beyond loopback;
# /healthz and /readyz stay open).

ARG NODE_IMAGE=node:24-slim

# --- build: all dependencies (including the pinned `node` devDependency and TypeScript), then dist/
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only. --omit=dev leaves out the `node` devDependency, so the
# runtime uses the image's own /usr/local/bin/node; no production dependency needs an install script.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Application files belong to root and are read-only for the `node` user that runs them;
# only the two volume directories belong to `node`.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
RUN mkdir -p routes certs && chown node:node routes certs
VOLUME ["/app/routes", "/app/certs"]
# The image's `node` user, numerically, so Kubernetes' runAsNonRoot can verify it without runAsUser.
USER 1000:1000
EXPOSE 8080 8443 9901
# No curl in the slim image: node itself probes the admin /healthz. It follows WAYGATE_ADMIN
# (HOST:PORT, :PORT, PORT, [IPv6]:PORT; a wildcard host is probed on loopback).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const a=process.env.WAYGATE_ADMIN||'127.0.0.1:9901';const m=/^(?:\\[?([^\\]]*?)\\]?:)?(\\d+)$/.exec(a);let h=(m&&m[1])||'127.0.0.1';if(h==='0.0.0.0')h='127.0.0.1';if(h==='::')h='::1';if(h.includes(':'))h='['+h+']';fetch('http://'+h+':'+(m?m[2]:9901)+'/healthz',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
# dist/main.js directly: bin/waygate.js picks dist/ only when installed under node_modules/
# (from /app/bin it would look for the TypeScript sources, which the image does not ship).
# waygate handles SIGTERM/SIGINT (drain, exit 0) and SIGHUP (reload) itself, so it also works
# as PID 1; `--init` (tini) additionally reaps zombies.
# 4 MB young-generation semi-spaces keep a busy proxy near 120 MB RSS instead of ~230 MB, at no
# measured throughput cost (docs/performance.md); bin/waygate.js sets the same default. Two
# glibc malloc arenas (instead of one per allocating thread) held the chaos soak's peak RSS at
# 215 MB instead of 275 MB; bin/waygate.js sets that too.
ENV NODE_OPTIONS="--max-semi-space-size=4" MALLOC_ARENA_MAX=2
ENTRYPOINT ["node", "/app/dist/main.js"]
CMD []
