/**
 * The offline Qubes Admin API simulator: qubesd's `admin.*` methods and the
 * policy admin API over an in-memory system, on a Unix socket or in process.
 *
 * @packageDocumentation
 */
export {
  Simulator,
  createSimulator,
  startSimulator,
  appFromSystemInfo,
  systemInfoOf,
  policyReplyToServiceResult,
  POLICY_INTERNAL_ERROR,
  type SimulatorOptions,
  type SimulatorServer,
  type ReplySink,
  type CallHandle,
} from "./server.js";
export { simulatorTransport, simulatorRequestHandler, simulatorServiceHandler } from "./transport.js";
export {
  MemoryPolicyStore,
  DiskPolicyStore,
  PolicyAdminError as SimPolicyAdminError,
  handlePolicyRequest,
  runPolicyService,
  POLICY_METHODS,
  type PolicyStore,
} from "./policy.js";
export { App as SimApp, Qube as SimQube, type AppOptions as SimAppOptions } from "./model.js";
export { adminMethodNames } from "./admin.js";
export { parseRequest as parseSimRequest, SimError, SimAbort, MAX_REQUEST_BYTES as SIM_MAX_REQUEST_BYTES, type SimRequest } from "./wire.js";
