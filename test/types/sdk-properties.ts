/**
 * Type-level tests of `setProperty` (checked by `tsc -b` through
 * `test/types/tsconfig.json`; never run). Every `@ts-expect-error` must
 * really be an error, or the compiler fails on the unused directive.
 */
import { Qubes, type Qube } from "../../sdk/src/index.js";

declare const qubes: Qubes;
declare const name: string;
declare const anyValue: string | number | boolean | null;

export async function properties(): Promise<void> {
  const work = qubes.qube("work");
  await work.setProperty("memory", 800);
  await work.setProperty("memory", 800n);
  await work.setProperty("memory", "800");
  // @ts-expect-error memory is an integer
  await work.setProperty("memory", "abc");
  // @ts-expect-error memory is an integer, not a boolean
  await work.setProperty("memory", true);
  // @ts-expect-error no such property
  await work.setProperty("memroy", 800);
  // @ts-expect-error visible_ip is computed by qubesd (read-only)
  await work.setProperty("visible_ip", "10.137.0.5");
  await work.setProperty("netvm", null);
  await work.setProperty("netvm", "sys-firewall");
  await work.setProperty("netvm", qubes.qube("sys-firewall"));
  // @ts-expect-error netvm is a qube, not a number
  await work.setProperty("netvm", 3);
  await work.setProperty("autostart", true);
  // @ts-expect-error autostart is a boolean
  await work.setProperty("autostart", "yes");
  await work.setProperty("kernelopts", "nopat");
  // A name only known at run time: qubesd checks it.
  await work.setProperty(name, anyValue);

  // Per class: a TemplateVM has no template, a DispVM has auto_cleanup.
  const tpl = qubes.qube<"TemplateVM">("fedora-41");
  // @ts-expect-error a TemplateVM has no template property
  await tpl.setProperty("template", "debian-12");
  await tpl.setProperty("appvm_default_bootmode", "default");
  const disp = qubes.qube<"DispVM">("disp1");
  await disp.setProperty("auto_cleanup", true);
  // @ts-expect-error a DispVM is not a disposable template
  await disp.setProperty("template_for_dispvms", true);
  const typed: Qube = work;
  void typed;

  // Global properties.
  await qubes.setProperty("default_dispvm", "default-dvm");
  await qubes.setProperty("stats_interval", 3);
  // @ts-expect-error stats_interval is an integer
  await qubes.setProperty("stats_interval", "often");
  // @ts-expect-error the global maxmem is computed
  await qubes.setProperty("maxmem", 4000);
  // @ts-expect-error not a global property
  await qubes.setProperty("memory", 400);
}
