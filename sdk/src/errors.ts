/**
 * Errors of the Admin API client.
 *
 * Every exception name that qubesd (`qubes/exc.py`) or the reference client
 * (`qubesadmin/exc.py`) knows has its own class here, in a tree that mirrors
 * the server's hierarchy, so `instanceof QubesVMError` works as it does in
 * Python. The server's message is kept literally (`error.message`), the wire
 * class name verbatim (`error.qubesType`). A name this file does not know maps
 * to {@link QubesUnknownError}, which keeps the name.
 *
 * Client-side failures (bad arguments, an empty reply, a transport failure,
 * a timeout) have their own classes under {@link QubesClientError} and carry a
 * stable kebab-case `code`.
 */

/** Converts a class name such as `QubesVMNotFoundError` to `qubes-vm-not-found-error`. */
function kebab(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1-$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1-$2")
    .toLowerCase();
}

/**
 * The root of every error the SDK throws for a Qubes reason (the Python
 * `qubesadmin.exc.QubesException`).
 */
export class QubesException extends Error {
  /** The exception class name as it appeared on the wire (or the client-side class name). */
  qubesType: string;
  /** A stable kebab-case code, derived from the class name. */
  code: string;
  /** The server's traceback (only when qubesd runs with `--debug`), else `""`. */
  traceback: string;

  constructor(message: string, options: { qubesType?: string; traceback?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const type = options.qubesType ?? new.target.name;
    this.name = new.target.name;
    this.qubesType = type;
    this.code = kebab(type);
    this.traceback = options.traceback ?? "";
  }
}

// ---------------------------------------------------------------------------
// The server hierarchy (qubes/exc.py), with the client-only additions of qubesadmin.

/** `QubesVMNotFoundError`: no such qube. */
export class QubesVMNotFoundError extends QubesException {}
/** `QubesVMInvalidUUIDError`: a `uuid:` destination that is not a valid UUID. */
export class QubesVMInvalidUUIDError extends QubesException {}
/** `QubesVMAlreadyExistsError` (unknown to qubesadmin). */
export class QubesVMAlreadyExistsError extends QubesException {}
/** `QubesVMError`: something is wrong with a qube's state. */
export class QubesVMError extends QubesException {}
/** `QubesVMInUseError`. */
export class QubesVMInUseError extends QubesVMError {}
/** `QubesVMNotStartedError`: the qube is powered off. */
export class QubesVMNotStartedError extends QubesVMError {}
/** `QubesVMNotRunningError`. */
export class QubesVMNotRunningError extends QubesVMNotStartedError {}
/** `QubesVMNotPausedError`. */
export class QubesVMNotPausedError extends QubesVMNotStartedError {}
/** `QubesVMCancelledPauseError` (unknown to qubesadmin). */
export class QubesVMCancelledPauseError extends QubesVMError {}
/** `QubesVMNotSuspendedError`. */
export class QubesVMNotSuspendedError extends QubesVMError {}
/** `QubesVMNotHaltedError`. */
export class QubesVMNotHaltedError extends QubesVMError {}
/** `QubesVMShutdownTimeoutError`. */
export class QubesVMShutdownTimeoutError extends QubesVMError {}
/** `QubesNoTemplateError`. */
export class QubesNoTemplateError extends QubesVMError {}
/** `QubesMemoryError`. */
export class QubesMemoryError extends QubesVMError {}
/** `QubesVMAlreadyStartedError` (client-only in qubesadmin). */
export class QubesVMAlreadyStartedError extends QubesVMError {}
/** `QubesPoolInUseError`. */
export class QubesPoolInUseError extends QubesException {}
/** `QubesValueError` (also a Python `ValueError`). */
export class QubesValueError extends QubesException {}
/** `QubesPropertyValueError`. */
export class QubesPropertyValueError extends QubesValueError {}
/** `QubesNoSuchPropertyError`. */
export class QubesNoSuchPropertyError extends QubesException {}
/** `QubesNotImplementedError`. */
export class QubesNotImplementedError extends QubesException {}
/** `QubesBackupProfileNotFoundError` (unknown to qubesadmin). */
export class QubesBackupProfileNotFoundError extends QubesException {}
/** `BackupCancelledError`. */
export class BackupCancelledError extends QubesException {}
/** `BackupCanceledError` (sic, raised by `qubes/backup.py`). */
export class BackupCanceledError extends QubesException {}
/** `BackupAlreadyRunningError`. */
export class BackupAlreadyRunningError extends QubesException {}
/** `BackupRestoreError` (client-only in qubesadmin). */
export class BackupRestoreError extends QubesException {}
/** `QubesFeatureNotFoundError`. */
export class QubesFeatureNotFoundError extends QubesException {}
/** `QubesTagNotFoundError`. */
export class QubesTagNotFoundError extends QubesException {}
/** `QubesLabelNotFoundError`. */
export class QubesLabelNotFoundError extends QubesException {}
/** `QubesLabelInUseError` (unknown to qubesadmin). */
export class QubesLabelInUseError extends QubesException {}
/** `DeviceNotAssigned`. */
export class DeviceNotAssigned extends QubesException {}
/** `DeviceNotFound` (unknown to qubesadmin). */
export class DeviceNotFound extends QubesException {}
/** `DeviceAlreadyAttached`. */
export class DeviceAlreadyAttached extends QubesException {}
/** `DeviceAlreadyAssigned`. */
export class DeviceAlreadyAssigned extends QubesException {}
/** `UnrecognizedDevice`. */
export class UnrecognizedDevice extends QubesException {}
/** `UnexpectedDeviceProperty`. */
export class UnexpectedDeviceProperty extends QubesException {}
/** `StoragePoolException`. */
export class StoragePoolException extends QubesException {}
/** `UnhandledSignalException` (callback storage driver). */
export class UnhandledSignalException extends StoragePoolException {}
/** `DatasetBusy` (zfs storage driver). */
export class DatasetBusy extends StoragePoolException {}
/** `DatasetHasDependentClones` (zfs storage driver). */
export class DatasetHasDependentClones extends StoragePoolException {}
/** `DatasetDoesNotExist` (zfs storage driver). */
export class DatasetDoesNotExist extends StoragePoolException {}
/** `QubesVolumeCopyInUseError` (unknown to qubesadmin). */
export class QubesVolumeCopyInUseError extends QubesException {}
/** `QubesVolumeRevisionNotFoundError` (a `KeyError` on the server: reaches the wire only as an empty reply). */
export class QubesVolumeRevisionNotFoundError extends QubesException {}
/** `QubesPoolNotFoundError` (never on the wire today). */
export class QubesPoolNotFoundError extends QubesException {}
/** `QubesVolumeNotFoundError` (never on the wire today). */
export class QubesVolumeNotFoundError extends QubesException {}
/** `QubesNotesError` (client-only in qubesadmin). */
export class QubesNotesError extends QubesException {}
/** `QubesPropertyAccessError` (client-only in qubesadmin: a property without a value). */
export class QubesPropertyAccessError extends QubesException {}
/** `ProtocolError`: the server refused the request as malformed (a Python `AssertionError`). */
export class ProtocolError extends QubesException {}
/** `QubesUnrecognizedDeviceAssignmentMode` (unknown to qubesadmin). */
export class QubesUnrecognizedDeviceAssignmentMode extends ProtocolError {}
/** `QubesVolumeCopyTokenNotFoundError` (unknown to qubesadmin). */
export class QubesVolumeCopyTokenNotFoundError extends ProtocolError {}
/** `QubesInvalidTagError` (unknown to qubesadmin). */
export class QubesInvalidTagError extends ProtocolError {}
/** `QubesInvalidLabelError` (unknown to qubesadmin). */
export class QubesInvalidLabelError extends ProtocolError {}
/** `QubesInvalidLabelValueError` (unknown to qubesadmin). */
export class QubesInvalidLabelValueError extends ProtocolError {}
/** `PermissionDenied`: refused by qubesd or an extension (also unknown pools and volumes). */
export class PermissionDenied extends QubesException {}

/** An exception name neither qubesd nor qubesadmin knows today; `qubesType` keeps the name. */
export class QubesUnknownError extends QubesException {}

type QubesErrorClass = new (message: string, options?: { qubesType?: string; traceback?: string; cause?: unknown }) => QubesException;

/** Every wire exception name the SDK maps to its own class. */
export const WIRE_ERROR_CLASSES: Readonly<Record<string, QubesErrorClass>> = Object.freeze({
  QubesException,
  QubesVMNotFoundError,
  QubesVMInvalidUUIDError,
  QubesVMAlreadyExistsError,
  QubesVMError,
  QubesVMInUseError,
  QubesVMNotStartedError,
  QubesVMNotRunningError,
  QubesVMNotPausedError,
  QubesVMCancelledPauseError,
  QubesVMNotSuspendedError,
  QubesVMNotHaltedError,
  QubesVMShutdownTimeoutError,
  QubesNoTemplateError,
  QubesMemoryError,
  QubesVMAlreadyStartedError,
  QubesPoolInUseError,
  QubesValueError,
  QubesPropertyValueError,
  QubesNoSuchPropertyError,
  QubesNotImplementedError,
  QubesBackupProfileNotFoundError,
  BackupCancelledError,
  BackupCanceledError,
  BackupAlreadyRunningError,
  BackupRestoreError,
  QubesFeatureNotFoundError,
  QubesTagNotFoundError,
  QubesLabelNotFoundError,
  QubesLabelInUseError,
  DeviceNotAssigned,
  DeviceNotFound,
  DeviceAlreadyAttached,
  DeviceAlreadyAssigned,
  UnrecognizedDevice,
  UnexpectedDeviceProperty,
  StoragePoolException,
  UnhandledSignalException,
  DatasetBusy,
  DatasetHasDependentClones,
  DatasetDoesNotExist,
  QubesVolumeCopyInUseError,
  QubesVolumeRevisionNotFoundError,
  QubesPoolNotFoundError,
  QubesVolumeNotFoundError,
  QubesNotesError,
  QubesPropertyAccessError,
  ProtocolError,
  QubesUnrecognizedDeviceAssignmentMode,
  QubesVolumeCopyTokenNotFoundError,
  QubesInvalidTagError,
  QubesInvalidLabelError,
  QubesInvalidLabelValueError,
  PermissionDenied,
});

/**
 * Builds the typed error for an exception reply (`2\0type\0traceback\0message\0`).
 * The message is kept literally (never `%`-formatted).
 */
export function errorFromWire(type: string, message: string, traceback = ""): QubesException {
  const cls = Object.prototype.hasOwnProperty.call(WIRE_ERROR_CLASSES, type) ? WIRE_ERROR_CLASSES[type] : undefined;
  if (cls) return new cls(message, { qubesType: type, traceback });
  return new QubesUnknownError(message, { qubesType: type, traceback });
}

// ---------------------------------------------------------------------------
// Client-side errors.

/** A failure on the client side of the call (never sent by qubesd). */
export class QubesClientError extends QubesException {
  constructor(message: string, code: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.code = code;
  }
}

/** The reply was not in the format the protocol defines (qubesadmin's `QubesDaemonCommunicationError`). */
export class QubesDaemonCommunicationError extends QubesClientError {
  constructor(message: string, code = "malformed-reply", options: { cause?: unknown } = {}) {
    super(message, code, options);
  }
}

/**
 * `QubesDaemonAccessError` of qubesadmin (a `QubesDaemonCommunicationError`):
 * the call did not produce an answer (no reply, refused by qrexec, transport failure).
 */
export class QubesDaemonAccessError extends QubesDaemonCommunicationError {}

/** qubesadmin's other name of {@link QubesDaemonAccessError}. */
export const QubesDaemonNoResponseError = QubesDaemonAccessError;

/**
 * qubesd closed the connection without a byte: an unhandled server exception,
 * a framing error, or an over-long request. Never retried automatically.
 */
export class QubesEmptyReplyError extends QubesDaemonAccessError {
  constructor(message = "got empty response from qubesd (see 'journalctl -u qubesd -e' in dom0)") {
    super(message, "empty-reply");
  }
}

/** The transport could not connect or failed in the middle of a call. */
export class QubesTransportError extends QubesDaemonAccessError {
  constructor(message: string, options: { cause?: unknown; code?: string } = {}) {
    super(message, options.code ?? "transport-failed", options);
  }
}

/** A qrexec or command transport exited non-zero (policy refusal and the like); `stderr` is kept. */
export class QubesServiceCallError extends QubesDaemonAccessError {
  /** The exit code of the process. */
  exitCode: number | null;
  /** The standard error output of the process. */
  stderr: string;
  constructor(exitCode: number | null, stderr: string, command: string) {
    const detail = stderr.trim().split("\n")[0] ?? "";
    super(`service call error: ${command} exited with ${exitCode ?? "a signal"}${detail ? `: ${detail}` : ""}`, "service-call-failed");
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** A request argument broke a rule that qubesd or qrexec enforce; nothing was sent. */
export class QubesValidationError extends QubesClientError {
  /** Which argument was wrong (`dest`, `arg`, `payload`, `name` …). */
  field: string;
  constructor(message: string, code: string, field: string) {
    super(message, code);
    this.field = field;
  }
}

/** The request is over 65536 bytes; nothing was sent. */
export class QubesRequestTooLargeError extends QubesValidationError {
  /** The size the request would have had. */
  size: number;
  constructor(size: number) {
    super(`request of ${size} bytes is over the 65536-byte limit of qubesd`, "request-too-large", "payload");
    this.size = size;
  }
}

/** The call took longer than its timeout; the connection was closed. */
export class QubesTimeoutError extends QubesClientError {
  constructor(ms: number, what: string) {
    super(`${what} timed out after ${ms} ms`, "timeout");
  }
}

/** The call was aborted through its `AbortSignal`; the connection was closed. */
export class QubesAbortError extends QubesClientError {
  constructor(what: string, reason?: unknown) {
    super(`${what} was aborted`, "aborted", reason === undefined ? {} : { cause: reason });
  }
}

/** A reply was well framed but its content could not be parsed into the expected type. */
export class QubesParseError extends QubesDaemonCommunicationError {
  constructor(message: string) {
    super(message, "unparsable-reply");
  }
}
