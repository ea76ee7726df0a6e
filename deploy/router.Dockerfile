# The router: Hive Gateway with the committed supergraph and persisted-document manifest.
FROM node:20-slim
WORKDIR /app/router
COPY router/package.json router/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY router/ ./
COPY schema/ /app/schema/
USER node
EXPOSE 4000
CMD ["node", "node_modules/.bin/hive-gateway", "supergraph", "/app/schema/supergraph.graphql"]
