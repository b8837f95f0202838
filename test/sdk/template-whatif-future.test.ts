/**
 * The future system model and policy directory of what-if: what qubesd adds
 * on its own, default resolution, removals, ownership of policy files.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT, policyFileHeader, type DomainInfo, type QubeDecl, type StackModel } from "@qubes-kit/language";
import { futurePolicy, futureSystem, generatedPolicyText, type WhatIfSystem } from "@qubes-kit/sdk";

function live(type: string, extra: Partial<DomainInfo> = {}): DomainInfo {
  return {
    internal: null,
    tags: ["audiovm-dom0", "guivm-dom0"],
    type,
    template_for_dispvms: false,
    default_dispvm: "default-dvm",
    icon: `${type === "TemplateVM" ? "templatevm" : "appvm"}-red`,
    label: "0xcc0000",
    guivm: "dom0",
    relayvm: null,
    transport_rpc: null,
    power_state: "Halted",
    uuid: `uuid-${type}`,
    ...extra,
  };
}

const SYSTEM: WhatIfSystem = {
  domains: {
    dom0: { ...live("AdminVM"), tags: [], guivm: null, icon: "adminvm-black", label: "0x000000", uuid: "00000000-0000-0000-0000-000000000000" },
    "debian-13": live("TemplateVM"),
    "default-dvm": live("AppVM", { template_for_dispvms: true, icon: "templatevm-red" }),
    work: live("AppVM", { tags: ["audiovm-dom0", "guivm-dom0", "mine"], icon: "appvm-blue", label: "0x3465a4", power_state: "Running" }),
    pinned: live("AppVM", { default_dispvm: "other-dvm" }),
    "other-dvm": live("AppVM", { template_for_dispvms: true, icon: "templatevm-purple", label: "0x75507b" }),
    old: live("AppVM"),
  },
};

function qube(name: string, klass: QubeDecl["class"], decl: Partial<QubeDecl> = {}): QubeDecl {
  return { name, class: klass, properties: {}, features: {}, state: "any", absent: false, protect: false, ignore_changes: [], ...decl };
}

function stack(qubes: QubeDecl[], extra: Partial<StackModel> = {}): StackModel {
  return { format: 1, stack: "s", global: {}, labels: {}, qubes, policy: [], expect: [], options: { prune: false, restart: "never", policy_priority: 40, adopt: false }, ...extra };
}

describe("future system model", () => {
  it("adds what qubesd adds to a new qube: created-by, guivm and audiovm tags, icon, placeholder uuid", () => {
    const f = futureSystem(SYSTEM, stack([qube("vault-gpg", "AppVM", { properties: { template: "debian-13", label: "black", audiovm: null }, tags: ["gpg"], features: { servicevm: "1" } })]), { applier: "mgmt" });
    const d = f.domains["vault-gpg"]!;
    expect(d.tags).toEqual(["created-by-mgmt", "gpg", "guivm-dom0"]);
    expect(d.icon).toBe("servicevm-black");
    expect(d.label).toBe("0x000000");
    expect(d.type).toBe("AppVM");
    expect(d.default_dispvm).toBe("default-dvm");
    expect(d.power_state).toBe("Halted");
    expect(d.uuid).toMatch(/^00000000-0000-4000-8000-/);
  });

  it("resolves default_dispvm through the future global default, and a DispVM's to its template", () => {
    const f = futureSystem(
      SYSTEM,
      stack(
        [
          qube("web-dvm", "AppVM", { properties: { template: "debian-13", label: "red", template_for_dispvms: true } }),
          qube("sys-usb", "DispVM", { properties: { template: "other-dvm", label: "red" } }),
          qube("work", "AppVM", { properties: { default_dispvm: DEFAULT } }),
        ],
        { global: { default_dispvm: "web-dvm" } },
      ),
    );
    expect(f.domains["dom0"]!.default_dispvm).toBe("web-dvm");
    expect(f.domains["work"]!.default_dispvm).toBe("web-dvm");
    // Undeclared qubes that inherit follow the global; one set explicitly keeps its value.
    expect(f.domains["old"]!.default_dispvm).toBe("web-dvm");
    expect(f.domains["pinned"]!.default_dispvm).toBe("other-dvm");
    expect(f.domains["sys-usb"]!.default_dispvm).toBe("other-dvm");
    expect(f.domains["web-dvm"]!.icon).toBe("templatevm-red");
    expect(f.domains["web-dvm"]!.template_for_dispvms).toBe(true);
  });

  it("keeps automatic tags, replaces the managed set, follows guivm, drops absent qubes", () => {
    const f = futureSystem(SYSTEM, stack([qube("work", "AppVM", { tags: ["other"], properties: { guivm: "sys-gui" }, state: "halted" }), qube("old", "AppVM", { absent: true })]));
    expect(f.domains["work"]!.tags).toEqual(["audiovm-dom0", "guivm-sys-gui", "other"]);
    expect(f.domains["work"]!.guivm).toBe("sys-gui");
    expect(f.domains["work"]!.power_state).toBe("Halted");
    expect(f.domains["work"]!.label).toBe("0x3465a4");
    expect("old" in f.domains).toBe(false);
  });

  it("moves a renamed qube (moved_from): the former name is gone, the new one is its halted clone with its tags and label", () => {
    const f = futureSystem(SYSTEM, stack([qube("job", "AppVM", { moved_from: "work", tags: ["mine", "more"] })]), { applier: "mgmt" });
    expect("work" in f.domains).toBe(false);
    const job = f.domains["job"]!;
    expect([job.tags, job.label, job.power_state, job.type]).toEqual([["audiovm-dom0", "created-by-mgmt", "guivm-dom0", "mine", "more"], "0x3465a4", "Halted", "AppVM"]);
    expect(job.uuid).not.toBe("uuid-AppVM");
    // Nothing to move (the former name is not on the machine): a new qube as declared.
    const g = futureSystem(SYSTEM, stack([qube("fresh", "AppVM", { moved_from: "nowhere", properties: { label: "green" } })]));
    expect(g.domains["fresh"]!.tags).toEqual(["audiovm-dom0", "created-by-dom0", "guivm-dom0"]);
  });

  it("retags qubes that inherit guivm when the global default_guivm changes", () => {
    const f = futureSystem(SYSTEM, stack([], { global: { default_guivm: "sys-gui" } }));
    expect(f.domains["old"]!.tags).toEqual(["audiovm-dom0", "guivm-sys-gui"]);
    expect(f.domains["old"]!.guivm).toBe("sys-gui");
  });

  it("resets what the stack managed before and no longer declares (x-qkit-keys)", () => {
    const sys: WhatIfSystem = {
      domains: {
        ...SYSTEM.domains,
        work: { ...SYSTEM.domains["work"]!, tags: ["audiovm-dom0", "gone", "guivm-dom0", "kept"], features: { "x-qkit-keys": "t:gone p:default_dispvm" }, properties: { default_dispvm: "other-dvm" }, default_dispvm: "other-dvm" },
      },
    };
    const f = futureSystem(sys, stack([qube("work", "AppVM")]));
    expect(f.domains["work"]!.tags).toEqual(["audiovm-dom0", "guivm-dom0", "kept"]);
    expect(f.domains["work"]!.default_dispvm).toBe("default-dvm");
  });
});

describe("future policy directory", () => {
  const files = {
    "30-user.policy": "qubes.Filecopy * @anyvm @anyvm ask\n",
    "40-qkit-s-old.policy": `${policyFileHeader("s")}\nqubes.X * @anyvm @anyvm allow\n`,
    "40-qkit-s-x-other.policy": "# not ours: no header\n",
    "40-qkit-s2-keep.policy": `${policyFileHeader("s2")}\n`,
  };
  it("writes the stack's files with the header, removes its files it no longer declares, keeps the rest", () => {
    const f = futurePolicy(files, stack([], { policy: [{ file: "machine", priority: 40, rules: "qubes.Y * @anyvm @anyvm deny" }, { file: "inc", priority: 40, include: true, rules: "" }] }));
    expect(Object.keys(f).sort()).toEqual(["30-user.policy", "40-qkit-s-machine.policy", "40-qkit-s-x-other.policy", "40-qkit-s2-keep.policy", "include/qkit-s-inc"]);
    expect(f["40-qkit-s-machine.policy"]).toBe(`${policyFileHeader("s")}\nqubes.Y * @anyvm @anyvm deny\n`);
    expect(f["40-qkit-s-machine.policy"]).toBe(generatedPolicyText("s", "qubes.Y * @anyvm @anyvm deny\n"));
  });
});
