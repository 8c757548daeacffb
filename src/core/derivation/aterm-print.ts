/**
 * Prints a derivation in the ATerm form of `.drv` files, byte for byte as Nix 2.8's
 * `Derivation::unparse` does:
 *
 *   Derive([("out","/nix/store/…-hello","","")],[("/nix/store/…-dep.drv",["out"])],["/nix/store/…-src"],
 *          "x86_64-linux","/bin/sh",["-c","…"],[("name","hello"),…])
 *
 * Output names, input paths, output-name lists and environment names are unescaped (as Nix does:
 * they cannot contain special characters); builder, args and env are escaped (`"`, `\`, newline,
 * CR and tab). Collections are sorted and de-duplicated in Nix's order.
 */
import * as Hash from "../hash.ts"
import { methodAlgo, type Derivation, type DerivationOutput } from "./types.ts"
import { sortedEntries, sortedUnique } from "./utf8-order.ts"

const escapes: Record<string, string> = { "\"": "\\\"", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" }
const specialRe = /["\\\n\r\t]/g

/** An escaped, quoted ATerm string. */
export const quote = (s: string): string => `"${s.replace(specialRe, (c) => escapes[c]!)}"`
const raw = (s: string): string => `"${s}"`
const list = (items: ReadonlyArray<string>, show: (s: string) => string): string => `[${items.map(show).join(",")}]`

const outputFields = (output: DerivationOutput, maskOutputs: boolean): [string, string, string] => {
  switch (output._tag) {
    case "InputAddressed": return [maskOutputs ? "" : output.path, "", ""]
    case "Fixed": return [maskOutputs ? "" : output.path, methodAlgo(output.method, output.hash.algorithm), Hash.encode(output.hash, "base16")]
    case "Floating": return ["", methodAlgo(output.method, output.algorithm), ""]
    case "Deferred": return ["", "", ""]
    case "Impure": return ["", methodAlgo(output.method, output.algorithm), "impure"]
  }
}

export interface PrintOptions {
  /** Print output paths and the environment variables named like outputs as empty strings (for hashing). */
  readonly maskOutputs?: boolean
  /** Print these input derivations instead of the derivation's own (hashDerivationModulo's replacement). */
  readonly inputDrvs?: ReadonlyMap<string, ReadonlyArray<string>>
}

export const print = (drv: Derivation, options: PrintOptions = {}): string => {
  const mask = options.maskOutputs ?? false
  const outputs = sortedEntries(drv.outputs).map(([name, output]) =>
    `(${[name, ...outputFields(output, mask)].map(raw).join(",")})`)
  const inputDrvs = sortedEntries(options.inputDrvs ?? drv.inputDrvs).map(([path, names]) =>
    `(${raw(path)},${list(sortedUnique(names), raw)})`)
  const env = sortedEntries(drv.env).map(([name, value]) =>
    `(${quote(name)},${quote(mask && drv.outputs.has(name) ? "" : value)})`)
  return `Derive([${outputs.join(",")}],[${inputDrvs.join(",")}],${list(sortedUnique(drv.inputSrcs), raw)},` +
    `${raw(drv.system)},${quote(drv.builder)},${list(drv.args, quote)},[${env.join(",")}])`
}
