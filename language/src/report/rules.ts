/**
 * What each diagnostic code means, for reports that describe their rules
 * (SARIF `tool.driver.rules`): a one-line summary and the default severity.
 * The analysis rules describe themselves (`ANALYSIS_RULES`); the engine's
 * codes are described here.
 */
import type { DiagnosticCode, Severity } from "../diagnostics.js";
import { ANALYSIS_RULES } from "../services/analysis.js";

/** The description of one diagnostic code. */
export interface CodeInfo {
  code: string;
  /** One line: what the code reports. */
  summary: string;
  /** What to do about it, in general (a diagnostic's own help is more precise). */
  help: string;
  severity: Severity;
}

const ENGINE_DENIES = "the real engine refuses to load a policy with this error, and then denies every call; fix the line";

/** The engine's codes: [summary, help, severity]. */
const ENGINE_CODES: Partial<Record<DiagnosticCode, [string, string, Severity]>> = {
  "wrong-number-of-fields": ["a rule line does not have the fields a rule needs (service, argument, source, target, action)", ENGINE_DENIES, "error"],
  "invalid-directive": ["a line starting with `!` is not a directive the engine knows", "use `!include`, `!include-dir`, `!include-service` or `!compat-4.0`; " + ENGINE_DENIES, "error"],
  "invalid-number-of-params": ["a directive has the wrong number of parameters", ENGINE_DENIES, "error"],
  "invalid-service": ["a service name has characters qrexec does not allow", "service names may contain only letters, digits, `.`, `_` and `-`", "error"],
  "invalid-argument": ["an argument has characters qrexec does not allow", "arguments may contain only letters, digits, `+`, `.`, `_` and `-`", "error"],
  "argument-without-plus": ["an argument does not start with `+`", "write the argument as `+VALUE`, or `*` for any argument", "error"],
  "argument-for-any-service": ["a rule for every service (`*`) names an argument", "a rule for every service must also use `*` as its argument", "error"],
  "empty-token": ["a qube token has an empty value (`@tag:`, `@type:` …)", ENGINE_DENIES, "error"],
  "invalid-token": ["a source or target is not a qube token the engine accepts in that column", ENGINE_DENIES, "error"],
  "invalid-action": ["the action is not `allow`, `deny` or `ask`", ENGINE_DENIES, "error"],
  "invalid-param-syntax": ["a rule parameter is not of the form `key=value`", ENGINE_DENIES, "error"],
  "duplicate-param": ["a rule parameter is given twice", ENGINE_DENIES, "error"],
  "invalid-yes-no": ["a yes/no parameter (`notify=`, `autostart=`) has another value", "write `yes` or `no`", "error"],
  "invalid-params-for-action": ["a parameter that the rule's action does not take", ENGINE_DENIES, "error"],
  "default-target-required": ["an `allow` rule to `@default` needs `target=`", ENGINE_DENIES, "error"],
  "invalid-filename": ["a `.policy` file name has characters outside [0-9a-z_.-]", "the engine rejects the file and then denies every call; rename it (lowercase, `-` for other characters)", "error"],
  "not-a-file": ["an include names something that is not a file", ENGINE_DENIES, "error"],
  "not-a-directory": ["an `!include-dir` names something that is not a directory", ENGINE_DENIES, "error"],
  "failed-to-load": ["a policy directory or file cannot be read", "check that the directory exists and is readable", "error"],
  "include-cycle": ["files include each other in a cycle", "the engine recurses until it crashes and denies every call; break the cycle", "error"],
  "not-utf8": ["a policy file is not UTF-8 text", "the engine fails to read it and denies every call; save the file as UTF-8", "error"],
  "invalid-include-path": ["an include path the engine does not accept", ENGINE_DENIES, "error"],
  "no-such-policy-file": ["an include names a file that does not exist", ENGINE_DENIES, "error"],
  "compat-not-recursive": ["`!compat-4.0` used outside a top-level file", ENGINE_DENIES, "error"],
  "include-dir-unsupported": ["`!include-dir` in a policy loaded from a string (policy admin API)", ENGINE_DENIES, "error"],
  "compat-transitional": ["`!compat-4.0` reads the legacy R4.0 policy files", "the directive is transitional and will be deprecated: move the legacy rules into policy.d", "warning"],
  "byte-order-mark": ["the file starts with a byte order mark, which the engine reads as part of the first word", "save the file as UTF-8 without a BOM", "warning"],
  "inline-comment": ["a `#` after a rule is not a comment for the engine", "put comments on lines of their own", "warning"],
  "internal-error": ["qubes-kit failed while checking this part of the policy", "please report it, with the policy that caused it", "error"],
};

/** What to do about the analysis rules' findings (their own summaries say what they find). */
const ANALYSIS_HELP: Partial<Record<DiagnosticCode, string>> = {
  "unknown-qube": "check the name against the system model (`qkit system snapshot`); a rule for a qube that does not exist never matches",
  "unknown-tag": "check the tag, or add it to the qubes that should carry it (`qvm-tags QUBE add TAG`)",
  "unknown-type": "use a Qubes class: AdminVM, AppVM, DispVM, StandaloneVM or TemplateVM",
  "unknown-dispvm-template": "name a qube with `template_for_dispvms` set, or set it on this one",
  "redirect-target-missing": "name a qube that exists in the system model",
  "shadowed-rule": "remove the rule, or move it above the broader rule",
  "ask-without-targets": "add `target=QUBE`, or a rule that allows some target",
  "legacy-token-in-new-format": "write the token with `@` (`$anyvm` is `@anyvm` in policy.d files)",
  "filename-disables-policy": "rename the file: lowercase, `-` for other characters",
  "dispvm-never-source": "use `@type:DispVM` (any disposable) or a `@tag:` that the disposables carry",
  "service-case-mismatch": "write the service name with the standard letter case",
  "dispvm-without-default": "set the qube's default_dispvm, or name the template: `@dispvm:NAME`",
  "service-not-provided":
    "install the service in the template of the qube that should answer (`/etc/qubes-rpc/SERVICE`) and let its agent advertise it (`qvm-run --service -u root TEMPLATE qubes.PostInstall`), or fix the service name or the target; the system model must carry what each qube advertises (`qkit system snapshot --services`, or the language server's live model); agents advertise only services in `/etc/qubes-rpc` (and, in template-based qubes, the template's `/usr/local/etc/qubes-rpc`), never one in a standalone's or template's own `/usr/local/etc/qubes-rpc` or in `/run/qubes-rpc`: for those, turn the rule off (`\"qubesPolicy.analysis\": { \"service-not-provided\": \"off\" }`, or check with a snapshot taken without `--services`)",
};

let table: Map<string, CodeInfo> | undefined;

/** Every known code with its description, sorted by code. */
export function knownCodes(): CodeInfo[] {
  return [...codeTable().values()].sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
}

function codeTable(): Map<string, CodeInfo> {
  if (table) return table;
  table = new Map();
  for (const [code, [summary, help, severity]] of Object.entries(ENGINE_CODES) as Array<[string, [string, string, Severity]]>) table.set(code, { code, summary, help, severity });
  for (const r of ANALYSIS_RULES) {
    const prev = table.get(r.meta.name);
    table.set(r.meta.name, { code: r.meta.name, summary: r.meta.summary, help: ANALYSIS_HELP[r.meta.name] ?? prev?.help ?? r.meta.summary, severity: r.meta.severity });
  }
  return table;
}

/** The description of a code (a generic one for a code this table does not know). */
export function codeInfo(code: string): CodeInfo {
  return codeTable().get(code) ?? { code, summary: `qrexec policy diagnostic ${code}`, help: "see the diagnostic's message", severity: "warning" };
}
