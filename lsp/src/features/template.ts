/** Stack files: plan and what-if against the configured machine (through the SDK, in the host). */
import { ErrorCodes, ResponseError } from "vscode-languageserver";
import { TemplatePlanRequest, TemplateWhatifRequest, type TemplateParams, type TemplatePlanResult, type TemplateWhatifResult } from "../protocol.js";
import { isTemplatePath } from "../template/feature.js";
import type { TemplateRun } from "../template/machine.js";
import { requireStrings } from "./params.js";
import type { ServerContext, ServerFeature } from "./types.js";

function templateRun(ctx: ServerContext, params: unknown): TemplateRun {
  requireStrings(params, ["uri"]);
  const uri = (params as TemplateParams).uri;
  if (!isTemplatePath(uri)) throw new ResponseError(ErrorCodes.InvalidParams, "`uri` must be a stack file (*.qubes.yaml)");
  const file = ctx.pathOfUri(uri);
  return {
    settings: ctx.settings,
    folder: ctx.folders[0],
    file,
    readFile: (p) => {
      const open = ctx.documents.get(ctx.uriOf(p));
      return open ? open.getText() : ctx.host.fs.readFile(p);
    },
    policyDir: ctx.workspacePolicyFor(file)?.root,
  };
}

const unavailable = (run: TemplateRun, what: string) => ({ file: run.file, connection: "none", error: `${what} is not available in this editor host (it needs the Node.js server)` });

export const templateFeature: ServerFeature = {
  name: "template",
  requests: (ctx) => [
    {
      method: TemplatePlanRequest.method,
      fallback: null,
      params: "any",
      async run(params: TemplateParams): Promise<TemplatePlanResult> {
        const run = templateRun(ctx, params);
        if (!ctx.host.template) return unavailable(run, "plan");
        try {
          return await ctx.host.template.plan(run);
        } catch (e) {
          ctx.log(`qubes-template: plan failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
          return { file: run.file, connection: "none", error: `cannot plan: ${e instanceof Error ? e.message : String(e)}` };
        }
      },
    },
    {
      method: TemplateWhatifRequest.method,
      fallback: null,
      params: "any",
      async run(params: TemplateParams): Promise<TemplateWhatifResult> {
        const run = templateRun(ctx, params);
        if (!ctx.host.template?.whatif) return unavailable(run, "what-if");
        try {
          return await ctx.host.template.whatif(run);
        } catch (e) {
          ctx.log(`qubes-template: what-if failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
          return { file: run.file, connection: "none", error: `cannot run what-if: ${e instanceof Error ? e.message : String(e)}` };
        }
      },
    },
  ],
};
