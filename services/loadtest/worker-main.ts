// Entry point of a generator worker process (forked by the coordinator).
import { runWorkerProcess } from "./worker.js";

runWorkerProcess();
