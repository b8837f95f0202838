#!/usr/bin/env node
// Generates the TextMate grammars for qrexec policy files from one description.
//
// Run `node grammars/generate.mjs` after editing this file; it rewrites
// `qrexecpolicy.tmLanguage.json` and `qrexecpolicy-service.tmLanguage.json` next to it.
// A test (`test/grammars/generated.test.ts`) fails when the committed JSON is stale.
//
// The two dialects differ only in their separators and sigils, which is why one generator
// writes both (see the spec, sections 4.1 and 4.2):
// - `policy` (`source.qrexecpolicy`): `policy.d` files and `!include`d files;
//   fields are separated by Python whitespace, `@` starts a keyword token.
// - `service` (`source.qrexecpolicy.service`): legacy per-service files read through
//   `!include-service` or `!compat-4.0`; commas separate fields too, `$` means `@`,
//   and `$include:PATH` is a directive.
//
// INVARIANT: every column is tokenised by a pattern list that ends with a catch-all
// `invalid.illegal.*` pattern, so each whitespace-separated token gets exactly one
// meaningful scope and token patterns never need a start-of-token anchor.

import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Python `str.split()` whitespace that Oniguruma's `\s` lacks (the spec, section 4). */
const PY_EXTRA_WS = String.raw`\x1c-\x1f`;

/**
 * Builds one grammar.
 * @param {"policy" | "service"} dialect
 */
export function buildGrammar(dialect) {
  const legacy = dialect === "service";
  const lang = legacy ? "qrexecpolicy.service" : "qrexecpolicy";
  const sepChars = String.raw`\s` + PY_EXTRA_WS + (legacy ? "," : "");
  const WS = `[${sepChars}]`;
  const N = `[^${sepChars}]`;
  const E = `(?!${N})`;
  const AT = legacy ? "[@$]" : "@";
  // A token rest that must not start with a sigil (`@type:@x` is invalid, spec 6.2).
  const NAT = legacy ? `[^${sepChars}@$]` : `[^${sepChars}@]`;
  const s = (name) =>
    name
      .split(" ")
      .map((part) => `${part}.${lang}`)
      .join(" ");

  /** @param {"source" | "target" | "redirect"} ctx */
  const qubeTokens = (ctx) => {
    const inCtx = (...ctxs) => ctxs.includes(ctx);
    const patterns = [];
    if (inCtx("source", "target")) {
      patterns.push({ match: String.raw`\*` + E, name: s("keyword.operator.wildcard") });
    }
    for (const [kw, ctxs] of [
      ["anyvm", ["source", "target"]],
      ["adminvm", ["source", "target", "redirect"]],
      ["default", ["target"]],
      ["dispvm", ["target", "redirect"]],
    ]) {
      if (inCtx(...ctxs)) {
        patterns.push({ match: `${AT}${kw}${E}`, name: s(`constant.language.qube.${kw}`) });
      }
    }
    if (inCtx("source", "target")) {
      patterns.push({
        match: `(${AT}dispvm:${AT}tag:)(${NAT}${N}*)${E}`,
        captures: {
          1: { name: s("keyword.other.qube-prefix.dispvm-tag") },
          2: { name: s("entity.name.tag") },
        },
      });
    }
    patterns.push({
      match: `(${AT}dispvm:)(?:(uuid:)(${N}*)|(${NAT}${N}*))${E}`,
      captures: {
        1: { name: s("keyword.other.qube-prefix.dispvm") },
        2: { name: s("keyword.other.qube-prefix.uuid") },
        3: { name: s("constant.other.uuid") },
        4: { name: s("entity.name.qube") },
      },
    });
    if (inCtx("source", "target")) {
      for (const [prefix, scope] of [
        ["type", "entity.name.type"],
        ["tag", "entity.name.tag"],
      ]) {
        patterns.push({
          match: `(${AT}${prefix}:)(${NAT}${N}*)${E}`,
          captures: {
            1: { name: s(`keyword.other.qube-prefix.${prefix}`) },
            2: { name: s(scope) },
          },
        });
      }
    }
    patterns.push({
      match: `(uuid:)(${N}*)${E}`,
      captures: {
        1: { name: s("keyword.other.qube-prefix.uuid") },
        2: { name: s("constant.other.uuid") },
      },
    });
    // A name is anything that neither starts with a sigil nor is exactly `*`.
    patterns.push({ match: `(?!${AT})(?!\\*${E})${N}+`, name: s("entity.name.qube") });
    patterns.push({ match: `${N}+`, name: s(`invalid.illegal.qube.${ctx}`) });
    return patterns;
  };

  const service = [
    { match: String.raw`\*` + E, name: s("keyword.operator.wildcard") },
    { match: `[A-Za-z0-9._-]+${E}`, name: s("entity.name.function.service") },
    { match: `${N}+`, name: s("invalid.illegal.service") },
  ];
  const argument = [
    { match: String.raw`\*` + E, name: s("keyword.operator.wildcard") },
    { match: String.raw`\+[A-Za-z0-9+._-]*` + E, name: s("variable.parameter.argument") },
    { match: `${N}+`, name: s("invalid.illegal.argument") },
  ];

  const keyValue = (key, valueCapture) => ({
    match: `(${key})(=)(${N}*)`,
    captures: {
      1: { name: s("entity.other.attribute-name.parameter") },
      2: { name: s("keyword.operator.assignment") },
      3: valueCapture,
    },
  });
  // `target=`, `default_target=`, `notify=` and `autostart=` need a value; `user=` may be empty.
  const emptyValue = (key) => ({
    match: `(${key})(=)(?!${N})`,
    captures: {
      1: { name: s("entity.other.attribute-name.parameter invalid.illegal.empty-value") },
      2: { name: s("keyword.operator.assignment invalid.illegal.empty-value") },
    },
  });
  const redirectValue = { name: s("meta.redirect"), patterns: [{ include: "#redirect-token" }] };
  const yesNoValue = { patterns: [{ include: "#yes-no" }] };
  const param = {
    target: [emptyValue("target"), keyValue("target", redirectValue)],
    default_target: [emptyValue("default_target"), keyValue("default_target", redirectValue)],
    user: [keyValue("user", { name: s("string.unquoted.user") })],
    notify: [emptyValue("notify"), keyValue("notify", yesNoValue)],
    autostart: [emptyValue("autostart"), keyValue("autostart", yesNoValue)],
  };
  const commas = legacy ? [{ match: ",", name: s("punctuation.separator.comma") }] : [];
  const paramsFor = (keys) => [
    ...commas,
    ...keys.flatMap((k) => param[k]),
    { match: `[^=${sepChars}]*=${N}*`, name: s("invalid.illegal.parameter.unknown") },
    { match: `${N}+`, name: s("invalid.illegal.parameter.syntax") },
  ];
  const actionParams = {
    allow: ["target", "user", "notify", "autostart"],
    deny: ["notify"],
    ask: ["target", "default_target", "user", "notify", "autostart"],
  };

  const column = (name, include) => ({ name: s(`meta.column.${name}`), patterns: [{ include }] });
  const head = legacy
    ? { re: `^${WS}*(${N}+)${WS}+(${N}+)${WS}+`, cols: ["source", "target"] }
    : {
        re: `^${WS}*(${N}+)${WS}+(${N}+)${WS}+(${N}+)${WS}+(${N}+)${WS}+`,
        cols: ["service", "argument", "source", "target"],
      };
  const headCaptures = () =>
    Object.fromEntries(head.cols.map((c, i) => [i + 1, column(c, `#${c}`)]));
  const actionIdx = head.cols.length + 1;

  const ruleLines = Object.keys(actionParams).map((action) => ({
    match: `${head.re}(${action})${E}(.*)$`,
    name: s(`meta.rule.${action}`),
    captures: {
      ...headCaptures(),
      [actionIdx]: { name: s(`meta.column.action keyword.control.action.${action}`) },
      [actionIdx + 1]: { name: s("meta.parameters"), patterns: [{ include: `#params-${action}` }] },
    },
  }));
  ruleLines.push({
    match: `${head.re}(${N}+)(.*)$`,
    name: s("meta.rule.invalid-action"),
    captures: {
      ...headCaptures(),
      [actionIdx]: { name: s("meta.column.action invalid.illegal.action") },
      [actionIdx + 1]: { name: s("meta.parameters"), patterns: [{ include: "#params-any" }] },
    },
  });
  // A line with too few fields is still highlighted column by column (it is probably being
  // typed); the language server reports `wrong number of fields`.
  const incompleteCols = head.cols;
  ruleLines.push({
    match:
      `^${WS}*(${N}+)` + incompleteCols.slice(1).map(() => `(?:${WS}+(${N}+))?`).join("") + `${WS}*$`,
    name: s("meta.rule.incomplete"),
    captures: Object.fromEntries(incompleteCols.map((c, i) => [i + 1, column(c, `#${c}`)])),
  });

  const comment = {
    match: `^${WS}*((#).*)$`,
    captures: {
      1: { name: s("comment.line.number-sign") },
      2: { name: s("punctuation.definition.comment") },
    },
  };
  const path = { name: s("string.unquoted.path") };
  const directive = (d) => ({ name: s(`keyword.control.directive.${d}`) });

  const directives = legacy
    ? [
        {
          match: `^${WS}*(\\$include:)${WS}*(${N}+)${WS}*$`,
          name: s("meta.directive.include"),
          captures: { 1: directive("include"), 2: path },
        },
        {
          match: `^${WS}*(!include)${WS}+(${N}+)${WS}*$`,
          name: s("meta.directive.include"),
          captures: { 1: directive("include"), 2: path },
        },
        {
          match: `^${WS}*((\\$include:|!include${E}).*)$`,
          captures: {
            1: { name: s("invalid.illegal.wrong-number-of-params") },
            2: directive("include"),
          },
        },
        {
          match: `^${WS}*(!.*?)${WS}*$`,
          captures: { 1: { name: s("invalid.illegal.directive") } },
        },
      ]
    : [
        {
          match: `^${WS}*(!include-service)${WS}+(${N}+)${WS}+(${N}+)${WS}+(${N}+)${WS}*$`,
          name: s("meta.directive.include-service"),
          captures: {
            1: directive("include-service"),
            2: column("service", "#service"),
            3: column("argument", "#argument"),
            4: path,
          },
        },
        {
          match: `^${WS}*(!include-dir)${WS}+(${N}+)${WS}*$`,
          name: s("meta.directive.include-dir"),
          captures: { 1: directive("include-dir"), 2: path },
        },
        {
          match: `^${WS}*(!include)${WS}+(${N}+)${WS}*$`,
          name: s("meta.directive.include"),
          captures: { 1: directive("include"), 2: path },
        },
        {
          match: `^${WS}*(!compat-4\\.0)${WS}*$`,
          name: s("meta.directive.compat-4-0"),
          captures: { 1: directive("compat-4-0") },
        },
        {
          match: `^${WS}*((!(?:include-service|include-dir|include|compat-4\\.0))${E}.*)$`,
          captures: {
            1: { name: s("invalid.illegal.wrong-number-of-params") },
            2: { name: s("keyword.control.directive") },
          },
        },
        {
          match: `^${WS}*(!.*?)${WS}*$`,
          captures: { 1: { name: s("invalid.illegal.directive") } },
        },
      ];

  const repository = {
    comment,
    directive: { patterns: directives },
    rule: { patterns: ruleLines },
    source: { patterns: qubeTokens("source") },
    target: { patterns: qubeTokens("target") },
    "redirect-token": { patterns: qubeTokens("redirect") },
    "yes-no": {
      patterns: [
        { match: `(?:yes|no)${E}`, name: s("constant.language.boolean") },
        { match: `${N}+`, name: s("invalid.illegal.value") },
      ],
    },
    ...Object.fromEntries(
      Object.entries(actionParams).map(([action, keys]) => [`params-${action}`, { patterns: paramsFor(keys) }]),
    ),
    "params-any": {
      patterns: [
        ...commas,
        keyValue(`[^=${sepChars}]+`, { name: s("string.unquoted.value") }),
        { match: `${N}+`, name: s("invalid.illegal.parameter.syntax") },
      ],
    },
  };
  if (!legacy) {
    repository.service = { patterns: service };
    repository.argument = { patterns: argument };
  }

  return {
    $schema: "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
    name: legacy ? "Qubes qrexec legacy service policy" : "Qubes qrexec policy",
    scopeName: legacy ? "source.qrexecpolicy.service" : "source.qrexecpolicy",
    comment:
      "Generated by grammars/generate.mjs; do not edit by hand. " +
      (legacy
        ? "Legacy per-service syntax: SOURCE TARGET ACTION[,PARAMS], commas separate, $ means @."
        : "Policy syntax: SERVICE ARGUMENT SOURCE TARGET ACTION [KEY=VALUE ...]; no inline comments."),
    patterns: [{ include: "#comment" }, { include: "#directive" }, { include: "#rule" }],
    repository,
  };
}

/** The generated files, keyed by file name relative to `grammars/`. */
export function generatedFiles() {
  return {
    "qrexecpolicy.tmLanguage.json": JSON.stringify(buildGrammar("policy"), null, 2) + "\n",
    "qrexecpolicy-service.tmLanguage.json": JSON.stringify(buildGrammar("service"), null, 2) + "\n",
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [name, text] of Object.entries(generatedFiles())) {
    writeFileSync(new URL(`./${name}`, import.meta.url), text);
    console.log(`wrote grammars/${name}`);
  }
}
