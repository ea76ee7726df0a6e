# The router: Hive Gateway with the committed supergraph and persisted-document manifest.
# Build context: the repository root. router/node_modules is excluded by .dockerignore: `npm ci` below
# installs the locked dependencies for this image's platform, and a host copy must not overwrite them.
FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app/router
COPY router/package.json router/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY router/ ./
COPY schema/ /app/schema/
USER node
EXPOSE 4000
# node on the gateway's entry point directly (not npx/npm), so SIGTERM reaches the gateway (router/README.md).
CMD ["node", "node_modules/@graphql-hive/gateway/dist/bin.js", "supergraph", "/app/schema/supergraph.graphql"]
