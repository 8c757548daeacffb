/**
 * The values the `derivation` API accepts as attributes, and how they become environment strings
 * or JSON, as Nix's `coerceToString` and `printValueAsJSON` do it, keeping track of the store
 * paths they mention (Nix's "string context"):
 *
 * - strings as is; integers in decimal; floats as `%f` (`1.5` → `1.500000`) in the environment and
 *   `%g` in JSON; `true` → `"1"`, `false` and `null` → `""`; lists joined by spaces;
 * - references: an output of another derivation (`dep.outputs.out`, or `dep` itself for its first
 *   output), a store path (`storePath("/nix/store/…")`), a derivation's `.drv` path (`drvPath(dep)`,
 *   Nix's `dep.drvPath`: the whole closure of the `.drv` becomes an input, every output of every
 *   derivation in it included), or a string built with the `str` template tag from such references
 *   (`` str`${dep.outputs.dev}/include` ``), which keeps their context;
 * - plain objects only with structured attributes (they become JSON objects).
 *
 * A reference interpolated into an ordinary template literal loses its context (JavaScript strings
 * cannot carry it): use `str`.
 */
import type { DrvHash } from "./hash-modulo.ts"
import type * as Json from "./json-value.ts"
import type { Derivation } from "./types.ts"
import { formatFixed6, formatInt } from "./number-format.ts"
import { compareUtf8 } from "./utf8-order.ts"

/** Marks the objects of this module, so plain objects (JSON data) can be told apart from them. */
export const brand: unique symbol = Symbol.for("b3/derivation-value") as never

/** The part of a derivation that references to it need: its path and its hashDerivationModulo. */
export interface DerivationHandle {
  readonly drvPath: string
  readonly drvHash: DrvHash
  /** The `.drv` file's contents, when the derivation was made here (needed to write it to a store). */
  readonly aterm?: string
  /** The derivations it takes outputs from, when known (to write the whole graph to a store). */
  readonly inputs?: ReadonlyArray<DerivationHandle>
  /** The derivation itself, when known (its `.drv` closure is needed for `drvPath(…)` references). */
  readonly derivation?: Derivation
  /** Its input sources and everything they refer to, when known (defaults to `derivation.inputSrcs`). */
  readonly sourceClosure?: ReadonlyArray<string>
}

/** Store paths a string refers to: source paths, derivation outputs and whole derivations. */
export interface StringContext {
  readonly srcs: ReadonlySet<string>
  /** Source path → the paths it refers to, recursively (given with `storePath(path, { references })`). */
  readonly srcReferences: ReadonlyMap<string, ReadonlyArray<string>>
  /** drv path → the derivation and the names of its outputs used. */
  readonly outputs: ReadonlyMap<string, { readonly drv: DerivationHandle; readonly names: ReadonlySet<string> }>
  /** drv path → a derivation whose `.drv` path is mentioned (Nix's `=` context). */
  readonly drvPaths: ReadonlyMap<string, DerivationHandle>
}

/** An output of a derivation; as a string, its path (or a placeholder while that is unknown). */
export interface OutputRef {
  readonly [brand]: "OutputRef"
  readonly drv: DerivationHandle
  readonly outputName: string
  readonly path: string
  toString(): string
}

/** A store path used as a source input (`inputSrcs`). */
export interface StorePathRef {
  readonly [brand]: "StorePathRef"
  readonly path: string
  /** The paths it refers to, recursively, when known (they matter only to `drvPath(…)` closures). */
  readonly references: ReadonlyArray<string>
  toString(): string
}

/** A derivation's `.drv` path with Nix's `=` context (`dep.drvPath` in Nix): see `drvPath`. */
export interface DrvPathRef {
  readonly [brand]: "DrvPathRef"
  readonly drv: DerivationHandle
  toString(): string
}

/** A string together with the store paths it mentions. */
export interface ContextString {
  readonly [brand]: "ContextString"
  readonly value: string
  readonly context: StringContext
  toString(): string
}

/** A number that is a Nix float even when it is integral (`float(2)` prints `2.000000`). */
export interface FloatValue {
  readonly [brand]: "Float"
  readonly value: number
}

/** Anything that stands for a derivation's default output: `{ outputs, outputNames }` of a built derivation. */
export interface DerivationLike {
  readonly [brand]: "Derivation"
  readonly outputs: Readonly<Record<string, OutputRef>>
  readonly outputNames: ReadonlyArray<string>
}

export type Reference = OutputRef | StorePathRef | DrvPathRef | ContextString | DerivationLike
/** What may be interpolated into `str`. */
export type StringLike = string | Reference

export type Value =
  | StringLike
  | number
  | bigint
  | boolean
  | null
  | FloatValue
  | ReadonlyArray<Value>
  | { readonly [key: string]: Value | undefined }

export const emptyContext: StringContext = { srcs: new Set(), srcReferences: new Map(), outputs: new Map(), drvPaths: new Map() }

export const outputRef = (drv: DerivationHandle, outputName: string, path: string): OutputRef =>
  ({ [brand]: "OutputRef", drv, outputName, path, toString: () => path })

/**
 * A source input: a path already in the store (e.g. added with `nix-store --add`). Give its
 * `references` (the whole closure, as `nix-store -qR` lists it) if a `drvPath(…)` closure that
 * includes it must list them too, as Nix's would.
 */
export const storePath = (path: string, options: { readonly references?: ReadonlyArray<string> } = {}): StorePathRef =>
  ({ [brand]: "StorePathRef", path, references: options.references ?? [], toString: () => path })

/**
 * A derivation's `.drv` path as a string with Nix's `=` context (what `dep.drvPath` is in Nix): a
 * derivation that uses it gets the whole closure of that `.drv` as input sources, and every
 * derivation in that closure as an input with all its outputs, so its builder can read the graph.
 */
export const drvPath = (drv: DerivationHandle): DrvPathRef => ({ [brand]: "DrvPathRef", drv, toString: () => drv.drvPath })

export const float = (value: number): FloatValue => ({ [brand]: "Float", value })

const contextString = (value: string, context: StringContext): ContextString =>
  ({ [brand]: "ContextString", value, context, toString: () => value })

const kindOf = (v: unknown): string | undefined =>
  typeof v === "object" && v !== null && brand in v ? (v as { [brand]: string })[brand] : undefined

export const isReference = (v: unknown): v is Reference => {
  const k = kindOf(v)
  return k === "OutputRef" || k === "StorePathRef" || k === "DrvPathRef" || k === "ContextString" || k === "Derivation"
}

/** Context accumulated while turning attribute values into strings. */
export class ContextBuilder {
  readonly srcs = new Set<string>()
  readonly srcReferences = new Map<string, ReadonlyArray<string>>()
  readonly outputs = new Map<string, { drv: DerivationHandle; names: Set<string> }>()
  readonly drvPaths = new Map<string, DerivationHandle>()

  addSource(path: string, references: ReadonlyArray<string>): void {
    this.srcs.add(path)
    if (references.length > 0) this.srcReferences.set(path, references)
  }

  addOutput(drv: DerivationHandle, name: string): void {
    const entry = this.outputs.get(drv.drvPath)
    if (entry === undefined) this.outputs.set(drv.drvPath, { drv, names: new Set([name]) })
    else entry.names.add(name)
  }

  addContext(context: StringContext): void {
    for (const src of context.srcs) this.addSource(src, context.srcReferences.get(src) ?? [])
    for (const { drv, names } of context.outputs.values()) for (const name of names) this.addOutput(drv, name)
    for (const [path, drv] of context.drvPaths) this.drvPaths.set(path, drv)
  }

  get isEmpty(): boolean { return this.srcs.size === 0 && this.outputs.size === 0 && this.drvPaths.size === 0 }

  freeze(): StringContext {
    return {
      srcs: new Set(this.srcs),
      srcReferences: new Map(this.srcReferences),
      outputs: new Map([...this.outputs].map(([k, v]) => [k, { drv: v.drv, names: new Set(v.names) }])),
      drvPaths: new Map(this.drvPaths)
    }
  }
}

/** The string a reference stands for, recording its context. */
export const referenceString = (ref: Reference, ctx: ContextBuilder): string => {
  const kind = kindOf(ref)
  if (kind === "OutputRef") { const o = ref as OutputRef; ctx.addOutput(o.drv, o.outputName); return o.path }
  if (kind === "StorePathRef") { const s = ref as StorePathRef; ctx.addSource(s.path, s.references); return s.path }
  if (kind === "DrvPathRef") { const d = ref as DrvPathRef; ctx.drvPaths.set(d.drv.drvPath, d.drv); return d.drv.drvPath }
  if (kind === "ContextString") { const c = ref as ContextString; ctx.addContext(c.context); return c.value }
  const d = ref as DerivationLike
  return referenceString(d.outputs[d.outputNames[0]!]!, ctx)
}

/**
 * A string with context, like a Nix string with `${…}` interpolations:
 * `` str`${gcc.outputs.out}/bin/gcc -I${zlib.outputs.dev}/include` ``.
 */
export const str = (strings: TemplateStringsArray, ...values: ReadonlyArray<StringLike>): ContextString => {
  const ctx = new ContextBuilder()
  let value = strings[0]!
  values.forEach((v, i) => { value += (typeof v === "string" ? v : referenceString(v, ctx)) + strings[i + 1]! })
  return contextString(value, ctx.freeze())
}

/** The value Nix gives for an integer, or undefined if the number is not one (it is then a float). */
const asInteger = (v: number | bigint): bigint | undefined =>
  typeof v === "bigint" ? v : Number.isSafeInteger(v) ? BigInt(v) : undefined

const int64Min = -(2n ** 63n)
const int64Max = 2n ** 63n - 1n

export type Coerced = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly reason: string }
export type ToJson = { readonly ok: true; readonly value: Json.JsonValue } | { readonly ok: false; readonly reason: string }

const numberProblem = (v: number | bigint): string | undefined => {
  if (typeof v === "number" && !Number.isFinite(v)) return `${v} is not a number Nix can represent`
  const i = asInteger(v)
  if (i !== undefined && (i < int64Min || i > int64Max)) return `${v} does not fit in a 64-bit integer`
  return undefined
}

/** `coerceToString(…, coerceMore = true)`: how a non-structured attribute becomes an environment string. */
export const coerceToString = (root: Value, ctx: ContextBuilder): Coerced => {
  // Lists nest; walk them with an explicit stack so deep nesting cannot overflow the call stack.
  let out = ""
  const work: Array<{ readonly value: Value } | string> = [{ value: root }]
  while (work.length > 0) {
    const item = work.pop()!
    if (typeof item === "string") { out += item; continue }
    const v = item.value
    if (typeof v === "string") out += v
    else if (typeof v === "boolean") out += v ? "1" : ""
    else if (v === null) out += ""
    else if (typeof v === "number" || typeof v === "bigint") {
      const problem = numberProblem(v)
      if (problem !== undefined) return { ok: false, reason: problem }
      const i = asInteger(v)
      out += i !== undefined ? formatInt(i) : formatFixed6(Number(v))
    } else if (Array.isArray(v)) {
      const list = (v as ReadonlyArray<Value | undefined>).filter((x) => x !== undefined)
      // Elements are joined by spaces, except after an element that is an empty list (Nix's quirk).
      const pending: Array<{ value: Value } | string> = []
      list.forEach((x, i) => {
        pending.push({ value: x })
        if (i < list.length - 1 && !(Array.isArray(x) && x.length === 0)) pending.push(" ")
      })
      for (let i = pending.length - 1; i >= 0; i--) work.push(pending[i]!)
    } else if (isReference(v)) out += referenceString(v, ctx)
    else if (kindOf(v) === "Float") out += formatFixed6((v as FloatValue).value)
    else return { ok: false, reason: "cannot coerce a set to a string (objects need __structuredAttrs = true)" }
  }
  return { ok: true, value: out }
}

/** `printValueAsJSON`: how a structured attribute becomes JSON (object keys sorted, floats as `%g` when printed). */
export const toJson = (root: Value, ctx: ContextBuilder): ToJson => {
  // Build bottom-up with an explicit stack of containers being filled.
  type Slot = { readonly value: Value; readonly put: (j: Json.JsonValue) => void }
  let result: Json.JsonValue = null
  const work: Array<Slot> = [{ value: root, put: (j) => { result = j } }]
  while (work.length > 0) {
    const { value: v, put } = work.pop()!
    if (typeof v === "string" || typeof v === "boolean" || v === null) put(v)
    else if (typeof v === "number" || typeof v === "bigint") {
      const problem = numberProblem(v)
      if (problem !== undefined) return { ok: false, reason: problem }
      put(asInteger(v) ?? Number(v))
    } else if (Array.isArray(v)) {
      const items: Array<Json.JsonValue> = []
      const list = (v as ReadonlyArray<Value>).filter((x) => x !== undefined)
      list.forEach((x, i) => { items.push(null); work.push({ value: x, put: (j) => { items[i] = j } }) })
      put(items)
    } else if (isReference(v)) put(referenceString(v, ctx))
    else if (kindOf(v) === "Float") {
      const f = (v as FloatValue).value
      if (!Number.isFinite(f)) return { ok: false, reason: `${f} is not a number Nix can represent` }
      put(f)
    } else {
      const entries = (Object.entries(v as Record<string, Value | undefined>).filter(([, x]) => x !== undefined) as Array<[string, Value]>)
        .sort(([a], [b]) => compareUtf8(a, b))
      const map = new Map<string, Json.JsonValue>()
      for (const [k, x] of entries) { map.set(k, null); work.push({ value: x, put: (j) => { map.set(k, j) } }) }
      put(map)
    }
  }
  return { ok: true, value: result }
}

