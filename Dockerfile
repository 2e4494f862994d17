FROM node:22-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY libs ./libs
COPY apps ./apps
COPY scripts ./scripts
COPY tsconfig.json tsconfig.base.json ./
COPY test ./test
RUN npm ci --no-audit --no-fund && npx tsc -b
ENV NODE_ENV=production
EXPOSE 10000
CMD ["node", "apps/launcher/dist/main.js"]
