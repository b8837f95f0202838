/**
 * The data of plan and apply: what was read from the live system
 * ({@link LiveSystem}), and the plan ({@link Plan}) as ordered steps, each
 * with the Admin API calls it makes. Pure data, JSON-serialisable: a plan
 * saved with `qkit template plan --out` is this object.
 */
import type { Provenance } from "@qubes-kit/language";

/** A property as read: whether it is the default, and its typed value (`null`: None or no value). */
export interface LiveProperty {
  default: boolean;
  value: string | number | boolean | null;
}

/** A device assignment as read (canonical). */
export interface LiveAssignment {
  devclass: string;
  backend: string;
  port: string;
  deviceId: string;
  mode: string;
  options: Record<string, string>;
}

/** A volume as read (the parts a stack manages; usage is left out, it changes all the time). */
export interface LiveVolume {
  pool: string;
  size: number;
  revisions_to_keep: number;
  rw: boolean;
  ephemeral: boolean;
}

/** One qube as read. The optional parts are read only for qubes in scope. */
export interface LiveQube {
  name: string;
  class: string;
  state: string;
  /** The writable properties (the class table's `rw`), plus `template` where the class has one. */
  properties: Record<string, LiveProperty>;
  features: Record<string, string>;
  tags: string[];
  /** Rules in qubesd's normalised `Get` form. */
  firewall?: string[];
  /** Assignments per device class (only the classes read). */
  devices?: Record<string, LiveAssignment[]>;
  volumes?: Record<string, LiveVolume>;
  notes?: string;
  /** qubesd's number of the qube (read-only; the rehearsal's copy keeps it, so values derived from it, such as `ip`, match). */
  qid?: number;
}

/** One policy file as read. */
export interface LivePolicyFile {
  /** The policy admin API name (`40-qkit-s-f`, or `qkit-s-f` for an include file). */
  name: string;
  include: boolean;
  text: string;
  /** `sha256:…` of the text. */
  token: string;
}

/** A device a backend offers (for selectors). */
export interface LiveDevice {
  backend: string;
  devclass: string;
  port: string;
  deviceId: string;
  interfaces: string[];
  vendor?: string;
  product?: string;
}

/** Everything a plan was computed from. */
export interface LiveSystem {
  /** Qubes by name, every visible qube. */
  qubes: Record<string, LiveQube>;
  globals: Record<string, LiveProperty>;
  /** Label name → colour (`""` when unreadable). */
  labels: Record<string, string>;
  pools: string[];
  /** Every policy file name listed (main, and include as `include/NAME`). */
  policyNames: string[];
  /** The policy files read (the ones this stack declares or owns, and same-named ones). */
  policy: Record<string, LivePolicyFile>;
  /** Devices offered by backends, per `backend:devclass` (only those a selector needed). */
  available: Record<string, LiveDevice[]>;
  /** The device classes qubesd has (`admin.deviceclass.List`), read only for a plan that moves a qube (`moved_from`): its assignments of every class are moved. */
  deviceClasses?: string[];
}

/** What a step changes on. */
export type StepKind =
  | "create-label"
  | "remove-label"
  | "create"
  | "adopt"
  | "set-property"
  | "reset-property"
  | "set-feature"
  | "remove-feature"
  | "add-tag"
  | "remove-tag"
  | "set-firewall"
  | "assign-device"
  | "unassign-device"
  | "set-device-mode"
  | "resize-volume"
  | "set-volume"
  | "set-notes"
  | "record-keys"
  | "set-global"
  | "reset-global"
  | "write-policy"
  | "remove-policy"
  | "shutdown"
  | "start"
  | "remove";

/** When a change takes effect on the (running) qube. */
export type StepEffect = "live" | "next-start" | "needs-halt" | "none";

/** One call a step makes (policy writes are `policy.Replace`/`policy.Remove` with the token in the payload). */
export interface StepCall {
  method: string;
  dest: string;
  arg: string;
  payload: string;
  /** The payload is the reply of the previous call (a `CloneFrom` token for `CloneTo`). */
  payloadFromPrevious?: boolean;
}

/** One step of a plan. */
export interface PlanStep {
  /** Stable within the plan (`work.p.netvm`, `work.create`, `policy.40-qkit-s-f`). */
  id: string;
  kind: StepKind;
  /** `qube NAME`, `global`, `label NAME`, `policy FILE`. */
  target: string;
  /** The object's name (qube, label, file) or `""` for globals. */
  object: string;
  /** The setting changed (`netvm`, `feature servicevm`, `tag gpg-client`, `firewall`, `pci dom0:00_14.0` …), or `""` for the object itself. */
  key: string;
  calls: StepCall[];
  /** Human-readable values (`default (sys-firewall)`, `400`, `none`, `absent`). */
  before: string | null;
  after: string | null;
  requires: string[];
  effect: StepEffect;
  /**
   * `grants-access` (tags, policy, netvm), `data-loss` (remove), `restart` (shutdown/start),
   * `take-over` (marking a qube another stack owns as this stack's, `--take-over`), or `none`.
   */
  risk: "none" | "grants-access" | "revokes-access" | "data-loss" | "restart" | "take-over";
  /**
   * The stack this step takes a qube or a global property from (`--take-over`): the qube's
   * ownership mark, the global's setting, and the other stack's record that drops it.
   */
  takeOverFrom?: string;
  /**
   * On a `remove` step: the qube is removed to be created again under the same name, as another
   * class (`--allow-replace`); its volumes and their data are lost. The `create` step requires it.
   */
  replace?: true;
  /**
   * A rename (`moved_from`): on the `create` step of the new qube, the qube it is cloned from
   * (`movedFrom`); on the `remove` step of the former qube, its new name (`movedTo`: its volumes
   * and settings were cloned there first, so nothing is lost but its revisions).
   */
  movedFrom?: string;
  movedTo?: string;
  /** Deferred: a needs-halt change of a running qube without `--restart=if-needed`; not applied. */
  deferred?: string;
  /** A rewritten policy file: the lines removed (`- `), added (`+ `) and moved (`~ LINE (moved from N to M)`), as {@link lineDiff} gives them. */
  diff?: string[];
  provenance?: Provenance;
}

/** A change qubesd makes on its own as a consequence of a plan's steps (seen in the rehearsal). */
export interface SideEffect {
  /** The qube, or `""` for a global property. */
  qube: string;
  /** As a step's key: a property name, `feature NAME`, `tag NAME`. */
  key: string;
  /** As a step's `before`/`after` (`default (sys-net)`, `"1"`, `absent`, `present`). */
  before: string;
  after: string;
  /**
   * The stack declares this setting (its ownership record holds it): qubesd
   * changes a setting of the stack, so the system does not match the stack
   * after apply.
   */
  managed?: true;
  /** The step whose setting qubesd changed again afterwards (a consequence of a later step); `before` is then what the step set. */
  undoes?: string;
}

/** A problem that stops the plan (ownership, shrink, class change …). */
export interface PlanError {
  code: string;
  message: string;
  provenance?: Provenance;
  /** Where it is, as `FILE:LINE:COLUMN` (1-based; the CLI adds it from {@link provenance}, reading the file). */
  at?: string;
}

/** The plan. */
export interface Plan {
  qkitPlan: 1;
  stack: string;
  /** Ordered steps (deferred ones included, marked). */
  steps: PlanStep[];
  errors: PlanError[];
  /** What the plan does that deserves a look but is not an error (a protected orphan left alone, a pruned qube the stack still names). */
  warnings?: PlanError[];
  /** Summary counts (qubes): created, changed, destroyed; plus other objects. */
  /** `move`: renames (`moved_from`), counted apart from the creations and removals they are made of (absent when none). */
  summary: { create: number; change: number; destroy: number; adopt: number; policy: number; global: number; deferred: number; move?: number };
  /** Running qubes with next-start changes. */
  restartToTakeEffect: string[];
  /** Owned by this stack but no longer declared (removed only with `--prune`). */
  orphans: string[];
  /** What was read: the qubes read fully and the policy names; {@link Plan.fingerprint} is over these. */
  scope: {
    qubes: string[];
    policy: string[];
    available: string[];
    /** The qubes whose features were all read (the declared ones); see `ReadOptions.focus`. */
    focus?: string[];
    /** What was read of each qube in `qubes`. */
    deep?: Record<string, { firewall?: boolean; devices?: string[]; volumes?: boolean; notes?: boolean }>;
  };
  /** `sha256:` of every value read for objects in the plan and the policy file tokens. */
  fingerprint: string;
  /**
   * The {@link fingerprint} part by part (digests only), kept in a saved plan
   * (`qkit template plan --out`) so that a stale plan can say what changed.
   */
  view?: FingerprintView;
  options: { adopt: boolean; takeOver?: boolean; allowReplace?: boolean; prune: boolean; restart: "never" | "if-needed"; policyDir?: string };
  /**
   * The stack's `expect:` entries checked against the system and policy after
   * apply (what-if); absent when the stack has none. A failure blocks apply
   * unless the caller ignores expectations (`--ignore-expect`).
   */
  expectations?: PlanExpectations;
  /**
   * How many qrexec decisions change once the plan is applied (what-if's
   * decision diff, the calls `qkit template whatif` lists); absent when it was
   * not computed (a stack that writes no policy and has no `expect:` entries,
   * or a policy that does not load).
   */
  decisionChanges?: PlanDecisionChanges;
  /**
   * Why {@link decisionChanges} is absent although it was asked for: the
   * policy today, or the policy after apply, does not load (the daemon then
   * denies every call), with the engine's error.
   */
  policyNotLoading?: Array<{ when: "today" | "future"; message: string }>;
  /**
   * A short digest of the text of every policy file what-if read for this plan (file name →
   * digest), when it read them: its expectations, its count of decision changes and the marks and
   * order of policy writes and tag changes come from all of them, not only from the stack's files
   * the {@link fingerprint} covers. A saved plan whose policy differs now is stale.
   */
  whatifPolicy?: Record<string, string>;
}

/** The count of a plan's decision changes, by kind (`grant`: more allowed than today; `revoke`: less; `change`: another target). */
export interface PlanDecisionChanges {
  /** Calls (service, argument, source, target) whose decision changes. */
  total: number;
  grant: number;
  revoke: number;
  change: number;
  /** Services with a change. */
  services: number;
}

/** The outcome of a stack's `expect:` entries on the planned future (see `whatif.ts`). */
export interface PlanExpectations {
  total: number;
  /** The entries that do not hold: the expectation as one line, what went wrong, the deciding rule (`FILE:LINE`) when one decided. */
  failed: { expect: string; problem: string; rule: string | null }[];
}

/**
 * What a `fingerprint` (`read.ts`) covers, part by part, as short digests (no
 * values: a saved plan keeps it, see `Plan.view`): per qube its class, power
 * state, each property, feature, device class and volume, its tags, firewall
 * and notes (for a qube outside the plan, its class, reference properties and,
 * for dom0, features); each global property and label; the pools and policy
 * file names; each policy file read; the devices offered per backend and class.
 * `fingerprintChanges` compares two of them.
 */
export interface FingerprintView {
  /** Qube → part (`class`, `state`, `tags`, `properties:NAME`, `features:NAME`, `devices:CLASS`, `volumes:NAME`, …) → digest. */
  qubes: Record<string, Record<string, string>>;
  globals: Record<string, string>;
  labels: Record<string, string>;
  pools: string[];
  policyNames: string[];
  /** Policy key (`NAME`, `include/NAME`) → the start of its token. */
  policy: Record<string, string>;
  /** `backend:devclass` → digest. */
  available: Record<string, string>;
}

/** One difference between a plan's read and the live system (a stale plan): `qube work` / `memory`, `policy file 30-user.policy` / `""`; `what` is `new` or `gone` for a whole object. */
export interface StaleChange {
  subject: string;
  what: string;
}
