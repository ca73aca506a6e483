import { backplanes } from "../support/backplanes.js";
import { conformanceSuite } from "./suite.js";

conformanceSuite(backplanes.redis);
