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

/**
 * The grammar of stack files (`*.qubes.yaml`, scope `source.qubes-template`): the YAML the
 * stack format uses (block and flow collections, plain and quoted scalars, comments), the
 * format's own words (classes, `none`/`default`, `${param}` references), what the strict
 * profile refuses (anchors, aliases, tags) as invalid, and the qrexec policy of `rules: |`
 * blocks through `source.qrexecpolicy`.
 *
 * A `rules: |` block lasts while its lines are blank or indented deeper than the `rules` key;
 * the `while` conditions are lookaheads, so the policy grammar sees each whole line (its
 * patterns allow leading whitespace).
 */
export function buildTemplateGrammar() {
  const s = (name) =>
    name
      .split(" ")
      .map((part) => `${part}.qubes-template`)
      .join(" ");
  const header = String.raw`\s*(:)\s*(\|(?:[1-9][-+]?|[-+][1-9]?)?)\s*((#).*)?$`;
  /** Captures of a block header: `first` plus the four groups of `header`, numbered from `next`. */
  const blockCaptures = (first, next) => ({
    ...first,
    [next]: { name: s("punctuation.separator.key-value") },
    [next + 1]: { name: s("keyword.control.flow.block-scalar.literal") },
    [next + 2]: { name: s("comment.line.number-sign") },
    [next + 3]: { name: s("punctuation.definition.comment") },
  });
  const embedded = { name: s("meta.embedded.block.policy"), contentName: "meta.embedded.block.qrexecpolicy" };
  const policyBlocks = [
    {
      ...embedded,
      begin: String.raw`^( *)(-)( +)(rules)` + header,
      beginCaptures: blockCaptures({ 2: { name: s("punctuation.definition.block.sequence.item") }, 4: { name: s("entity.name.tag.rules") } }, 5),
      while: String.raw`^(?=\1 \3 +\S|[ \t]*$)`,
      patterns: [{ include: "source.qrexecpolicy" }],
    },
    {
      ...embedded,
      begin: String.raw`^( *)(rules)` + header,
      beginCaptures: blockCaptures({ 2: { name: s("entity.name.tag.rules") } }, 3),
      while: String.raw`^(?=\1 +\S|[ \t]*$)`,
      patterns: [{ include: "source.qrexecpolicy" }],
    },
  ];
  // Any other block scalar (`notes: |`) is text up to the next line indented no deeper than its key.
  const textBlocks = [
    {
      name: s("meta.block-scalar"),
      begin: String.raw`^( *)(?:(-)( +))?([^\s#:'"{}\[\],][^#:]*?)\s*(:)\s*([|>](?:[1-9][-+]?|[-+][1-9]?)?)\s*((#).*)?$`,
      beginCaptures: {
        2: { name: s("punctuation.definition.block.sequence.item") },
        4: { name: s("entity.name.tag") },
        5: { name: s("punctuation.separator.key-value") },
        6: { name: s("keyword.control.flow.block-scalar") },
        7: { name: s("comment.line.number-sign") },
        8: { name: s("punctuation.definition.comment") },
      },
      while: String.raw`^(?=\1 +\S|[ \t]*$)`,
      contentName: s("string.unquoted.block"),
    },
  ];
  const scalarEnd = String.raw`(?=\s*(?:$|#|,|\]|\}))`;
  return {
    $schema: "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
    name: "Qubes stack (domain template)",
    scopeName: "source.qubes-template",
    comment: "Generated by grammars/generate.mjs; do not edit by hand. YAML as the stack format uses it, with the qrexec policy of rules: | blocks.",
    patterns: [{ include: "#policy-block" }, { include: "#text-block" }, { include: "#line" }],
    repository: {
      "policy-block": { patterns: policyBlocks },
      "text-block": { patterns: textBlocks },
      line: {
        patterns: [
          { include: "#comment" },
          { match: String.raw`^(?:---|\.\.\.)(?=\s|$)`, name: s("punctuation.separator.document") },
          { match: String.raw`(?<=^|\s)(-)(?=\s|$)`, name: s("punctuation.definition.block.sequence.item") },
          { include: "#key" },
          { include: "#value" },
        ],
      },
      comment: {
        match: String.raw`(?<=^|\s)((#).*)$`,
        captures: { 1: { name: s("comment.line.number-sign") }, 2: { name: s("punctuation.definition.comment") } },
      },
      key: {
        match: String.raw`(?<=^|[\s{,])("[^"]*"|'[^']*'|(?:\$\{[A-Za-z_][A-Za-z0-9_-]*\}|[^\s#:'"{}\[\],&*!|>$])(?:\$\{[A-Za-z_][A-Za-z0-9_-]*\}|[^\s#:,{}\[\]$])*)\s*(:)(?=\s|$)`,
        captures: {
          1: { name: s("entity.name.tag"), patterns: [{ include: "#param" }] },
          2: { name: s("punctuation.separator.key-value") },
        },
      },
      param: { match: String.raw`\$\{[A-Za-z_][A-Za-z0-9_-]*\}`, name: s("variable.other.parameter") },
      value: {
        patterns: [
          { include: "#comment" },
          { match: String.raw`[{}\[\],]`, name: s("punctuation.definition.flow") },
          { match: String.raw`(?<=^|[\s\[{,])[&*][^\s,\]\}]*`, name: s("invalid.illegal.anchor-or-alias") },
          { match: String.raw`(?<=^|[\s\[{,])![^\s,\]\}]*`, name: s("invalid.illegal.tag") },
          {
            begin: '"',
            end: '"|$',
            name: s("string.quoted.double"),
            patterns: [{ match: String.raw`\\(?:[0abtnvfre "/\\N_LP\t]|x\h{2}|u\h{4}|U\h{8})`, name: s("constant.character.escape") }, { include: "#param" }],
          },
          { begin: "'", end: "'(?!')|$", name: s("string.quoted.single"), patterns: [{ match: "''", name: s("constant.character.escape") }, { include: "#param" }] },
          { match: String.raw`(?<=^|[\s\[{,])(?:true|false|True|False|TRUE|FALSE)` + scalarEnd, name: s("constant.language.boolean") },
          { match: String.raw`(?<=^|[\s\[{,])(?:null|Null|NULL|~)` + scalarEnd, name: s("constant.language.null") },
          { match: String.raw`(?<=^|[\s\[{,])(?:none|default)` + scalarEnd, name: s("constant.language.qubes") },
          { match: String.raw`(?<=^|[\s\[{,])(?:AppVM|TemplateVM|StandaloneVM|DispVM)` + scalarEnd, name: s("support.class.qube") },
          { match: String.raw`(?<=^|[\s\[{,])[-+]?(?:0x\h+|0o[0-7]+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)` + scalarEnd, name: s("constant.numeric") },
          { match: String.raw`(?<=^|[\s\[{,])\d+(?:\.\d+)?\s*(?:[KMGT]i?B|[KMGT]i?|B)` + scalarEnd, name: s("constant.numeric.size") },
          { include: "#param" },
          { match: String.raw`[^\s#,{}\[\]"'$]+(?:\s+[^\s#,{}\[\]"'$]+)*`, name: s("string.unquoted") },
        ],
      },
    },
  };
}

/** The generated files, keyed by file name relative to `grammars/`. */
export function generatedFiles() {
  return {
    "qrexecpolicy.tmLanguage.json": JSON.stringify(buildGrammar("policy"), null, 2) + "\n",
    "qrexecpolicy-service.tmLanguage.json": JSON.stringify(buildGrammar("service"), null, 2) + "\n",
    "qubes-template.tmLanguage.json": JSON.stringify(buildTemplateGrammar(), null, 2) + "\n",
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [name, text] of Object.entries(generatedFiles())) {
    writeFileSync(new URL(`./${name}`, import.meta.url), text);
    console.log(`wrote grammars/${name}`);
  }
}
