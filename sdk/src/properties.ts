/**
 * Known properties of qubes and of the app (global), with their wire types,
 * and the encoding of values for `property.Set`.
 */
import { QubesValidationError } from "./errors.js";
import { validatePropertyValue } from "./validate.js";
import type { PropertyType } from "./values.js";

/** A qube reference as a property value: its name, or `null` for none. */
export type QubeRef = string | null;
/** A label reference: its name, or `null`. */
export type LabelRef = string | null;

/**
 * The properties qubesd 4.3 defines on qubes (union over the classes), by
 * their decoded type. `int`/`bool` properties may have no value (`undefined`).
 */
export interface QubeProperties {
  audiovm: QubeRef;
  autostart: boolean;
  backup_timestamp: number | undefined;
  bootmode: string;
  debug: boolean;
  default_dispvm: QubeRef;
  default_user: string;
  devices_denied: string;
  dns: string;
  gateway: string;
  gateway6: string;
  guivm: QubeRef;
  icon: string;
  include_in_backups: boolean;
  installed_by_rpm: boolean;
  ip: string;
  ip6: string;
  kernel: string;
  kernelopts: string;
  keyboard_layout: string;
  klass: string;
  label: LabelRef;
  mac: string;
  management_dispvm: QubeRef;
  maxmem: number;
  memory: number;
  name: string;
  netvm: QubeRef;
  provides_network: boolean;
  qid: number;
  qrexec_timeout: number;
  relayvm: QubeRef;
  shutdown_timeout: number;
  start_time: string;
  stubdom_mem: number | undefined;
  stubdom_uuid: string;
  stubdom_xid: number;
  template: QubeRef;
  template_for_dispvms: boolean;
  transport_rpc: string;
  updateable: boolean;
  uuid: string;
  vcpus: number;
  virt_mode: string;
  visible_gateway: string;
  visible_gateway6: string;
  visible_ip: string;
  visible_ip6: string;
  visible_netmask: string;
  xid: number;
}

/** The global properties of the app (`admin.property.*`). */
export interface GlobalProperties {
  check_updates_vm: boolean;
  clockvm: QubeRef;
  default_audiovm: QubeRef;
  default_dispvm: QubeRef;
  default_guivm: QubeRef;
  default_kernel: string;
  default_netvm: QubeRef;
  default_pool: string;
  default_pool_kernel: string;
  default_pool_private: string;
  default_pool_root: string;
  default_pool_volatile: string;
  default_qrexec_timeout: number;
  default_shutdown_timeout: number;
  default_template: QubeRef;
  management_dispvm: QubeRef;
  maxmem: number;
  no_cpus: number;
  stats_interval: number;
  updatevm: QubeRef;
}

/** Wire types of the known qube properties. */
export const QUBE_PROPERTY_TYPES: Readonly<Record<keyof QubeProperties, PropertyType>> = {
  audiovm: "vm", autostart: "bool", backup_timestamp: "int", bootmode: "str", debug: "bool", default_dispvm: "vm",
  default_user: "str", devices_denied: "str", dns: "str", gateway: "str", gateway6: "str", guivm: "vm", icon: "str",
  include_in_backups: "bool", installed_by_rpm: "bool", ip: "str", ip6: "str", kernel: "str", kernelopts: "str",
  keyboard_layout: "str", klass: "str", label: "label", mac: "str", management_dispvm: "vm", maxmem: "int",
  memory: "int", name: "str", netvm: "vm", provides_network: "bool", qid: "int", qrexec_timeout: "int",
  relayvm: "vm", shutdown_timeout: "int", start_time: "str", stubdom_mem: "int", stubdom_uuid: "str",
  stubdom_xid: "int", template: "vm", template_for_dispvms: "bool", transport_rpc: "str", updateable: "bool",
  uuid: "str", vcpus: "int", virt_mode: "str", visible_gateway: "str", visible_gateway6: "str", visible_ip: "str",
  visible_ip6: "str", visible_netmask: "str", xid: "int",
};

/** Wire types of the known global properties. */
export const GLOBAL_PROPERTY_TYPES: Readonly<Record<keyof GlobalProperties, PropertyType>> = {
  check_updates_vm: "bool", clockvm: "vm", default_audiovm: "vm", default_dispvm: "vm", default_guivm: "vm",
  default_kernel: "str", default_netvm: "vm", default_pool: "str", default_pool_kernel: "str",
  default_pool_private: "str", default_pool_root: "str", default_pool_volatile: "str", default_qrexec_timeout: "int",
  default_shutdown_timeout: "int", default_template: "vm", management_dispvm: "vm", maxmem: "int", no_cpus: "int",
  stats_interval: "int", updatevm: "vm",
};

/** Something with a name (a `Qube` or a `Label` object) usable as a property value. */
export interface Named {
  readonly name: string;
}

/** Values `setProperty` accepts. */
export type PropertyInput = string | number | bigint | boolean | null | Named;

/**
 * Encodes a value for `property.Set`: booleans as `True`/`False`, numbers in
 * decimal, `null` as the empty payload (None), named objects by name, strings
 * as they are (ASCII only; qubesd checks the rest and answers with its own
 * message).
 */
export function encodePropertyValue(name: string, value: PropertyInput, type?: PropertyType): string {
  let text: string;
  if (value === null) {
    text = "";
  } else if (typeof value === "boolean") {
    if (type && type !== "bool") throw new QubesValidationError(`property ${name} is of type ${type}, not bool`, "invalid-property-value", "value");
    text = value ? "True" : "False";
  } else if (typeof value === "number" || typeof value === "bigint") {
    if (typeof value === "number" && !Number.isInteger(value)) throw new QubesValidationError(`property ${name} needs an integer, got ${value}`, "invalid-property-value", "value");
    if (type && type !== "int") throw new QubesValidationError(`property ${name} is of type ${type}, not int`, "invalid-property-value", "value");
    text = value.toString();
  } else if (typeof value === "object") {
    text = value.name;
  } else {
    text = value;
  }
  return validatePropertyValue(name, text);
}
