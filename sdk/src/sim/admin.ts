/**
 * The `admin.*` methods of qubesd, over the simulator's {@link App}: the
 * method table (`api/registry.ts`) filled by one module per family.
 */
import "./api/properties.js";
import "./api/system.js";
import "./api/qubes.js";
import "./api/features-tags.js";
import "./api/storage.js";
import "./api/firewall.js";
import "./api/devices.js";

export { adminMethodNames, checkCall, findAdminMethod, type CallContext, type HandlerResult, type MethodDef, type StreamReply } from "./api/registry.js";
