/**
 * `nix-cache-info`, the file at the root of a binary cache:
 *
 *   StoreDir: /nix/store
 *   WantMassQuery: 1
 *   Priority: 40
 *
 * Parsed as Nix 2.8 does (lines of `Name: value`, values trimmed, unknown fields and lines
 * without a colon ignored), but strict about the values of the known fields.
 */
import { Result, Schema } from "effect"

export class InvalidCacheInfo extends Schema.TaggedError<InvalidCacheInfo>()("InvalidCacheInfo", { input: Schema.String, reason: Schema.String }) {
  override get message() { return `invalid nix-cache-info '${this.input}': ${this.reason}` }
}

export interface CacheInfo {
  readonly storeDir?: string
  readonly wantMassQuery?: boolean
  readonly priority?: number
}

export const parse = (text: string, source = "nix-cache-info"): Result.Result<CacheInfo, InvalidCacheInfo> => {
  const fail = (reason: string) => Result.fail(new InvalidCacheInfo({ input: source, reason }))
  let info: { storeDir?: string; wantMassQuery?: boolean; priority?: number } = {}
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":")
    if (colon < 0) continue
    const name = line.slice(0, colon)
    const value = line.slice(colon + 1).trim()
    if (name === "StoreDir") {
      if (!value.startsWith("/")) return fail(`StoreDir '${value}' is not an absolute path`)
      info = { ...info, storeDir: value }
    } else if (name === "WantMassQuery") {
      if (value !== "0" && value !== "1") return fail(`WantMassQuery must be 0 or 1, not '${value}'`)
      info = { ...info, wantMassQuery: value === "1" }
    } else if (name === "Priority") {
      if (!/^-?[0-9]{1,9}$/.test(value)) return fail(`Priority must be an integer, not '${value}'`)
      info = { ...info, priority: Number(value) }
    }
  }
  return Result.succeed(info)
}

export const print = (info: CacheInfo): string =>
  (info.storeDir !== undefined ? `StoreDir: ${info.storeDir}\n` : "") +
  (info.wantMassQuery !== undefined ? `WantMassQuery: ${info.wantMassQuery ? 1 : 0}\n` : "") +
  (info.priority !== undefined ? `Priority: ${info.priority}\n` : "")
