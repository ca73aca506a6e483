#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so the same entry point serves `npm start`,
// the Docker image and cluster workers (which re-run this file).
import { register } from "tsx/esm/api";

register();
const { holdEarlyConnections } = await import("../services/cluster/early-connections.ts");
holdEarlyConnections();
await import("../services/cli.ts");
