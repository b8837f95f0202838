/**
 * Compile-time tests of {@link defineStack}'s types: `tsc -b` compiles this
 * file with the SDK, so every `@ts-expect-error` below must be an error
 * (an unused one fails the build). `test/sdk/template-builder.test.ts` also
 * compiles it without the markers and checks the errors are where they
 * should be. Nothing here runs: the definitions sit in a function never called.
 */
import { DEFAULT, type QubeInput, type StackInput } from "./builder.js";

export function typeTests(): StackInput[] {
  const ok: StackInput = {
    stack: "types",
    global: { default_netvm: "sys-firewall", default_dispvm: null, updatevm: DEFAULT },
    qubes: {
      work: { class: "AppVM", template: "debian-13", label: "blue", memory: 800, netvm: DEFAULT, template_for_dispvms: false, features: { x: true, y: null }, services: { cups: false } },
      tpl: { class: "TemplateVM", source: { clone: "debian-13" }, label: "black", appvm_default_bootmode: "default" },
      box: { class: "StandaloneVM", source: { empty: true }, label: "red", template_for_dispvms: true },
      usb: { class: "DispVM", template: "dvm", label: "red", auto_cleanup: false, devices: { usb: [{ backend: "sys-usb", device: "0x1050:0x0407::u030000" }] } },
    },
    policy: [{ file: "machine", rules: "qubes.Gpg2 * work @default ask target=vault\n" }],
    expect: ["qubes.Gpg2 work @default => ask vault", { call: "qubes.Filecopy work -> vault", decision: "deny" }],
  };

  // @ts-expect-error memory is a number of MiB, not a string
  const memoryString: QubeInput = { class: "AppVM", memory: "abc" };
  // @ts-expect-error an unknown property
  const unknownKey: QubeInput = { class: "AppVM", memroy: 800 };
  // @ts-expect-error template_for_dispvms is not a property of a TemplateVM
  const wrongClass: QubeInput = { class: "TemplateVM", template_for_dispvms: true };
  // @ts-expect-error a DispVM has no source
  const dispSource: QubeInput = { class: "DispVM", source: { clone: "x" } };
  // @ts-expect-error virt_mode takes hvm, pv or pvh
  const virtMode: QubeInput = { class: "AppVM", virt_mode: "kvm" };
  // @ts-expect-error a class is required
  const noClass: QubeInput = { label: "red" };
  // @ts-expect-error netvm takes a qube name, null (none) or DEFAULT
  const noneString: QubeInput = { class: "AppVM", netvm: 0 };
  const badGlobal: StackInput = {
    stack: "g",
    // @ts-expect-error an unknown global property
    global: { default_netwm: "sys-firewall" },
  };
  const resetKernel: StackInput = {
    stack: "k",
    // @ts-expect-error default_kernel has no default to reset to
    global: { default_kernel: DEFAULT },
  };
  // @ts-expect-error the decision of an expectation is allow, ask or deny
  const badExpect: StackInput = { stack: "e", expect: [{ call: "qubes.Gpg2 work -> vault", decision: "maybe" }] };
  // @ts-expect-error state is running, halted or any
  const badState: QubeInput = { class: "AppVM", state: "paused" };

  void [memoryString, unknownKey, wrongClass, dispSource, virtMode, noClass, noneString, badExpect, badState];
  return [ok, badGlobal, resetKernel];
}
