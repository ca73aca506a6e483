/**
 * The process entry point of `switchboard`: bin/switchboard.js loads its compiled form from
 * dist/, development and tests run it through tsx. Cluster workers re-run this same file.
 * Connections a cluster primary hands over are held from the first line, before the gateway
 * modules load, and replayed once the worker listens for them.
 */
import { holdEarlyConnections } from "./cluster/early-connections.js";

holdEarlyConnections();
await import("./cli.js");
