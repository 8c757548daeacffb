/**
 * One pass over a NAR: `NarChecker` validates the structure (it drives the strict `NarDecoder`),
 * hashes and counts the bytes, computes the content hash (the NAR's for `recursive`, the single
 * regular file's bytes for `flat` and `text`), scans for references, checks all of it against
 * what is expected, and hands the decoded events to whoever consumes them (a restore, a listing).
 * It has the decoder's shape (`push(chunk, out)`, `end()`), so code that decodes anyway decodes
 * through it, and it never throws: any bytes give a result or a typed error.
 *
 * A NAR stream can carry checks that have not run yet (`CheckedNar`): `expectNar` adds one,
 * `checkedNar` makes one from the bytes and what they must be. Whoever consumes such a stream with
 * `narEvents`/`narBytes` runs its checks and their own in that one pass, so a NAR copied from a
 * cache into a store is decoded and hashed once. Nothing is skipped: every expectation attached
 * to the bytes is compared against the digest computed from those very bytes in the pass that
 * consumes them. A consumer that knows nothing of this just runs the stream, and the checks run
 * as it is read.
 */
import { Effect, Stream } from "effect"
import * as ContentAddress from "../core/content-address.ts"
import * as Hash from "../core/hash.ts"
import { NarDecoder } from "./decode.ts"
import { BadNar, HashMismatch } from "./errors.ts"
import * as Ev from "./events.ts"
import { hashModulo, type HashModulo } from "./hash-modulo.ts"
import { ReferenceScanner } from "./references.ts"
import { transduce } from "./transduce.ts"

/** How contents are hashed for a content address: the NAR (`recursive`) or the single regular file's bytes (`flat`, `text`). */
export type ContentMethod = "flat" | "recursive" | "text"

/** What a NAR must be; any part may be left out. */
export interface NarExpectation {
  /** Names the NAR in errors (its store path). */
  readonly path: string
  readonly narHash?: Hash.Hash | undefined
  readonly narSize?: number | undefined
  /** The contents must hash to this address (for `fixed:` and `text:`, the NAR must be a single regular file). */
  readonly ca?: ContentAddress.ContentAddress | undefined
  /**
   * The address's hash is of the contents modulo this hash part (a path that refers to itself, as a
   * content-addressed derivation output can: see hash-modulo.ts).
   */
  readonly caModulo?: string | undefined
}

export interface NarCheckOptions {
  readonly expect?: ReadonlyArray<NarExpectation>
  /** The algorithm of the result's `narHash` (default sha256). */
  readonly narHash?: Hash.HashAlgorithm
  /**
   * Whether to hash the NAR for the result (default true). False only for a consumer that hashes
   * the bytes itself, elsewhere (the chunk store, on a worker thread): the result's `narHash` is then
   * empty (zero bytes). A NAR hash named by an expectation is computed and checked either way.
   */
  readonly hashNar?: boolean
  /** Compute the hash a content address of this method and algorithm has (the result's `contentHash`). */
  readonly contentHash?: { readonly method: ContentMethod; readonly algorithm: Hash.HashAlgorithm }
  /** Candidate hash parts (32 nix-base32 characters) to look for; those found are the result's `references`. */
  readonly references?: Iterable<string>
  /**
   * Validate the structure (default true). Only for bytes b3's own encoder just wrote (dumping a
   * path) may this be false; the decoder still runs when a flat or text content hash needs the
   * file's bytes, and no events are given out without it.
   */
  readonly validate?: boolean
  readonly limits?: Ev.NarLimits
}

/** What the root of a NAR is (undefined when it was not decoded). */
export type NarRoot = "regular" | "executable" | "directory" | "symlink"

export interface NarCheckResult {
  /** The NAR's hash, with `options.narHash` (sha256 by default). */
  readonly narHash: Hash.Hash
  readonly narSize: number
  /** The content hash asked for with `options.contentHash`. */
  readonly contentHash: Hash.Hash | undefined
  readonly root: NarRoot | undefined
  /** The candidate hash parts that occur in the NAR. */
  readonly references: ReadonlyArray<string>
}

export type NarCheckError = BadNar | HashMismatch

/** A NAR whose hash is not the one declared for it (for a consumer that hashes it elsewhere, the same error as the check's). */
export const narHashMismatch = (path: string, expected: Hash.Hash, actual: Hash.Hash): HashMismatch =>
  new HashMismatch({ path, what: "NAR hash", expected: Hash.print(expected, "base32"), actual: Hash.print(actual, "base32") })

const isFlat = (method: ContentMethod) => method !== "recursive"
const caMethod = (ca: ContentAddress.ContentAddress): ContentMethod => ca._tag === "Text" ? "text" : ca.method

/**
 * The checking transducer. `push` each chunk with an array that receives the decoded events
 * (views of the chunk: consume them before the chunk is reused), then `end`; both return the
 * first error. `result` is the digest once `end` succeeded.
 */
export class NarChecker {
  private readonly expect: ReadonlyArray<NarExpectation>
  private readonly options: NarCheckOptions
  /** hashers over the NAR's bytes, by algorithm */
  private readonly narHashers = new Map<Hash.HashAlgorithm, Hash.Hasher>()
  /** hashers over the root file's contents, by algorithm (flat and text content addresses) */
  private readonly fileHashers = new Map<Hash.HashAlgorithm, Hash.Hasher>()
  private readonly fileHasherList: Array<Hash.Hasher | HashModulo>
  private readonly narHasherList: Array<Hash.Hasher | HashModulo>
  /** hashers modulo a self-reference, by expectation (over the NAR, or the root file's contents) */
  private readonly moduloHashers = new Map<NarExpectation, HashModulo>()
  private readonly decoder: NarDecoder | undefined
  private readonly scanner: ReferenceScanner | undefined
  /** the smallest expected size, and whose */
  private readonly sizeLimit: NarExpectation | undefined
  private readonly scratch: Array<Ev.NarEvent> = []
  private size = 0
  private root: NarRoot | undefined
  private failed: NarCheckError | undefined
  private outcome: NarCheckResult | undefined

  constructor(options: NarCheckOptions = {}) {
    this.options = options
    this.expect = options.expect ?? []
    const narAlgorithms = new Set<Hash.HashAlgorithm>(options.hashNar === false ? [] : [options.narHash ?? "sha256"])
    const fileAlgorithms = new Set<Hash.HashAlgorithm>()
    const want = (method: ContentMethod, algorithm: Hash.HashAlgorithm) =>
      (isFlat(method) ? fileAlgorithms : narAlgorithms).add(algorithm)
    if (options.contentHash) want(options.contentHash.method, options.contentHash.algorithm)
    let sizeLimit: NarExpectation | undefined
    const moduloNar: Array<HashModulo> = []
    const moduloFile: Array<HashModulo> = []
    for (const e of this.expect) {
      if (e.narHash) narAlgorithms.add(e.narHash.algorithm)
      if (e.ca && e.caModulo !== undefined) {
        const h = hashModulo(e.ca.hash.algorithm, e.caModulo)
        this.moduloHashers.set(e, h);
        (isFlat(caMethod(e.ca)) ? moduloFile : moduloNar).push(h)
      } else if (e.ca) want(caMethod(e.ca), e.ca.hash.algorithm)
      if (e.narSize !== undefined && (sizeLimit === undefined || e.narSize < sizeLimit.narSize!)) sizeLimit = e
    }
    this.sizeLimit = sizeLimit
    for (const a of narAlgorithms) this.narHashers.set(a, Hash.hasher(a))
    for (const a of fileAlgorithms) this.fileHashers.set(a, Hash.hasher(a))
    this.narHasherList = [...this.narHashers.values(), ...moduloNar]
    this.fileHasherList = [...this.fileHashers.values(), ...moduloFile]
    this.decoder = options.validate === false && this.fileHasherList.length === 0 ? undefined : new NarDecoder(options.limits)
    const candidates = options.references === undefined ? [] : [...options.references]
    this.scanner = candidates.length > 0 ? new ReferenceScanner(candidates) : undefined
  }

  /** Bytes seen so far. */
  get offset(): number { return this.size }

  /** Whether events are decoded (given out by `push`). */
  get decodes(): boolean { return this.decoder !== undefined }

  private fail(error: NarCheckError): NarCheckError {
    // a malformed NAR says whose it is, when that is known (a truncated NAR from a cache, say)
    const named = error._tag === "BadNar" && this.expect.length > 0
      ? new BadNar({ offset: error.offset, reason: `${error.reason} (in the NAR of ${this.expect[0]!.path})` })
      : error
    this.failed = named
    return named
  }

  push(chunk: Uint8Array, out: Array<Ev.NarEvent> = this.scratch): NarCheckError | undefined {
    if (this.failed) return this.failed
    this.size += chunk.length
    const limit = this.sizeLimit
    if (limit !== undefined && this.size > limit.narSize!) {
      return this.fail(new HashMismatch({ path: limit.path, what: "NAR size", expected: String(limit.narSize), actual: `more than ${limit.narSize}` }))
    }
    const hashers = this.narHasherList
    for (let i = 0; i < hashers.length; i++) hashers[i]!.update(chunk)
    this.scanner?.push(chunk)
    if (this.decoder === undefined) return undefined
    const start = out.length
    const bad = this.decoder.push(chunk, out)
    if (start < out.length && (this.root === undefined || this.fileHasherList.length > 0)) this.look(out, start)
    if (out === this.scratch) this.scratch.length = 0
    return bad ? this.fail(bad) : undefined
  }

  /** Notes the root's kind and feeds a root file's contents to the file hashers. */
  private look(events: ReadonlyArray<Ev.NarEvent>, from: number): void {
    if (this.root !== undefined && this.root !== "regular" && this.root !== "executable") return
    for (let i = from; i < events.length; i++) {
      const event = events[i]!
      if (this.root === undefined) {
        this.root = event._tag === "File" ? (event.executable ? "executable" : "regular")
          : event._tag === "Directory" ? "directory" : "symlink"
        if (this.root !== "regular" && this.root !== "executable") return
      }
      if (event._tag === "Contents") {
        const hashers = this.fileHasherList
        for (let k = 0; k < hashers.length; k++) hashers[k]!.update(event.bytes)
      }
    }
  }

  /** Call when the input has ended: checks the structure is complete and everything expected. */
  end(): NarCheckError | undefined {
    if (this.failed) return this.failed
    if (this.outcome) return undefined
    const bad = this.decoder?.end()
    if (bad) return this.fail(bad)
    const narDigests = new Map<Hash.HashAlgorithm, Hash.Hash>()
    for (const [a, h] of this.narHashers) narDigests.set(a, h.digest())
    const singleFile = this.root === "regular" || this.root === "executable"
    const fileDigests = new Map<Hash.HashAlgorithm, Hash.Hash>()
    for (const [a, h] of this.fileHashers) fileDigests.set(a, h.digest())
    const contentHash = (method: ContentMethod, algorithm: Hash.HashAlgorithm) =>
      (isFlat(method) ? fileDigests : narDigests).get(algorithm)!
    for (const e of this.expect) {
      if (e.narSize !== undefined && this.size !== e.narSize) {
        return this.fail(new HashMismatch({ path: e.path, what: "NAR size", expected: String(e.narSize), actual: String(this.size) }))
      }
      if (e.narHash) {
        const actual = narDigests.get(e.narHash.algorithm)!
        if (!Hash.equals(actual, e.narHash)) {
          return this.fail(narHashMismatch(e.path, e.narHash, actual))
        }
      }
      if (e.ca) {
        const method = caMethod(e.ca)
        if (isFlat(method) && !singleFile) {
          return this.fail(new HashMismatch({ path: e.path, what: "content address", expected: ContentAddress.print(e.ca), actual: "not a single regular file" }))
        }
        const modulo = this.moduloHashers.get(e)
        const actual = modulo !== undefined ? modulo.digest() : contentHash(method, e.ca.hash.algorithm)
        if (!Hash.equals(actual, e.ca.hash)) {
          return this.fail(new HashMismatch({ path: e.path, what: "content address", expected: ContentAddress.print(e.ca), actual: Hash.print(actual, "base32") }))
        }
      }
    }
    const asked = this.options.contentHash
    this.outcome = {
      narHash: narDigests.get(this.options.narHash ?? "sha256") ?? Hash.make(this.options.narHash ?? "sha256", new Uint8Array(0)),
      narSize: this.size,
      contentHash: asked ? contentHash(asked.method, asked.algorithm) : undefined,
      root: this.root,
      references: this.scanner?.found() ?? []
    }
    return undefined
  }

  /** The digest; only after `end` succeeded. */
  result(): NarCheckResult {
    if (!this.outcome) throw new Error("NarChecker.result() before a successful end()")
    return this.outcome
  }
}

/** Checks a whole NAR held in memory. */
export const checkNarBytes = (bytes: Uint8Array, options: NarCheckOptions = {}): { readonly events: Array<Ev.NarEvent>; readonly result: NarCheckResult | undefined; readonly error: NarCheckError | undefined } => {
  const checker = new NarChecker(options)
  const events: Array<Ev.NarEvent> = []
  const error = checker.push(bytes, events) ?? checker.end()
  return { events, result: error ? undefined : checker.result(), error }
}

/** Called with the digest when the pass has ended and every check passed, before the stream completes. */
export type OnResult = (result: NarCheckResult) => void

/** The decoded events of a byte stream, checked in the same pass (the stream fails with the first problem). */
const eventsOf = <E, R>(bytes: Stream.Stream<Uint8Array, E, R>, options: NarCheckOptions, onResult?: OnResult): Stream.Stream<Ev.NarEvent, E | NarCheckError, R> =>
  transduce(bytes, () => {
    const checker = new NarChecker({ ...options, validate: true })
    return {
      push: (chunk, out) => checker.push(chunk, out),
      end: () => {
        const error = checker.end()
        if (error === undefined) onResult?.(checker.result())
        return error
      }
    }
  })

/** The byte stream passed on unchanged, checked on the way; `onEvent` sees every decoded event. */
const bytesOf = <E, R>(bytes: Stream.Stream<Uint8Array, E, R>, options: NarCheckOptions, onEvent?: (event: Ev.NarEvent) => void, onResult?: OnResult): Stream.Stream<Uint8Array, E | NarCheckError, R> =>
  transduce(bytes, () => {
    const checker = new NarChecker(onEvent ? { ...options, validate: true } : options)
    const events: Array<Ev.NarEvent> = []
    return {
      push: (chunk, out: Array<Uint8Array>) => {
        const error = checker.push(chunk, events)
        if (onEvent) for (let i = 0; i < events.length; i++) onEvent(events[i]!)
        events.length = 0
        if (error) return error
        out.push(chunk)
        return undefined
      },
      end: () => {
        const error = checker.end()
        if (error === undefined) onResult?.(checker.result())
        return error
      }
    }
  })

const PlanId: unique symbol = Symbol.for("b3/nar/CheckedNar") as never

/** The bytes of a NAR and the checks they must pass, not run yet. */
export interface NarPlan<E, R> {
  readonly bytes: Stream.Stream<Uint8Array, E, R>
  readonly expect: ReadonlyArray<NarExpectation>
  /**
   * The same bytes in one piece, where the source can fetch a small NAR whole (one request, no
   * stream): `wholeNar` takes them so. Only for NARs it may hold whole (see there).
   */
  readonly whole?: Effect.Effect<Uint8Array, E, R> | undefined
  /**
   * The local file whose bytes these are, where they are a file's as it is (an uncompressed NAR in a
   * file cache): a consumer may read it itself (e.g. into buffers it reuses), running the checks.
   */
  readonly file?: string | undefined
}

/**
 * A NAR byte stream that checks itself as it is read, and carries those checks so that a consumer
 * that decodes and hashes anyway (`narEvents`, `narBytes`) runs them in its own pass instead.
 */
export interface CheckedNar<E, R> extends Stream.Stream<Uint8Array, E, R> {
  readonly [PlanId]: Effect.Effect<NarPlan<E, R>, E, R>
}

export const isCheckedNar = <E, R>(nar: Stream.Stream<Uint8Array, E, R>): nar is CheckedNar<E, R> => PlanId in nar

/** The plan of a NAR stream: its own, or the stream itself with nothing expected yet. */
export const planOf = <E, R>(nar: Stream.Stream<Uint8Array, E, R>): Effect.Effect<NarPlan<E, R>, E, R> =>
  isCheckedNar(nar) ? nar[PlanId] : Effect.succeed({ bytes: nar, expect: [] })

/** A NAR stream of `plan`'s bytes that must pass its checks (made once the plan's effect has run, e.g. after a lookup). */
export const checkedNar = <E, R>(plan: Effect.Effect<NarPlan<E, R>, E, R>): CheckedNar<E | NarCheckError, R> => {
  // (made when read: a NAR whose plan a consumer takes, as most do, never builds its stream)
  const stream = Stream.suspend(() => Stream.unwrap(Effect.map(plan, (p) => bytesOf(p.bytes, { expect: p.expect }))))
  return Object.assign(stream, { [PlanId]: plan as Effect.Effect<NarPlan<E | NarCheckError, R>, E | NarCheckError, R> })
}

/** The NAR stream with one more expectation, checked in the same pass as the ones it carries. */
export const expectNar = <E, R>(nar: Stream.Stream<Uint8Array, E, R>, expectation: NarExpectation): CheckedNar<E | NarCheckError, R> => {
  const inHand = narInHand(nar)
  // (bytes in hand come from `narInMemory`, whose plan is just them and the expectations in hand: made
  // afresh, not as a plan mapped from the old one, which a daemon adding small paths did once per path)
  if (inHand !== undefined) return narInMemory(inHand.bytes, [...inHand.expect, expectation])
  return checkedNar(Effect.map(planOf(nar), (p) => ({ ...p, expect: [...p.expect, expectation] })))
}

const InHandId: unique symbol = Symbol.for("b3/nar/InHand") as never

/**
 * A NAR's bytes already in memory, and the checks its stream carries: a consumer may check and use
 * them at once, without running the stream or its plan (a daemon adding a thousand small paths).
 */
export interface NarInHand {
  readonly bytes: Uint8Array
  readonly expect: ReadonlyArray<NarExpectation>
}

/** The bytes in hand of a NAR stream made by `narInMemory` (with expectations added by `expectNar`), else undefined. */
export const narInHand = <E, R>(nar: Stream.Stream<Uint8Array, E, R>): NarInHand | undefined =>
  (nar as { readonly [InHandId]?: NarInHand })[InHandId]

const withInHand = <E, R>(nar: CheckedNar<E, R>, inHand: NarInHand): CheckedNar<E, R> => Object.assign(nar, { [InHandId]: inHand })

const withPlan = (p: NarPlan<unknown, unknown>, options: NarCheckOptions): NarCheckOptions =>
  p.expect.length === 0 ? options : { ...options, expect: [...p.expect, ...(options.expect ?? [])] }

/**
 * The size up to which a NAR counts as small: a consumer may read it whole (`wholeNar`) and check
 * and write it in one synchronous pass, and a source may fetch it whole for that (`NarPlan.whole`).
 */
export const wholeNarMax = 64 * 1024

/**
 * A NAR held in memory as a stream whose plan has its bytes whole (`wholeNar` takes them as they
 * are), and the checks it must pass (none unless given).
 */
export const narInMemory = (bytes: Uint8Array, expect: ReadonlyArray<NarExpectation> = []): CheckedNar<NarCheckError, never> =>
  withInHand(checkedNar(Effect.sync(() => ({ bytes: Stream.make(bytes), expect, whole: Effect.succeed(bytes) }))), { bytes, expect })

/**
 * A small NAR read whole: its bytes and the checks its stream carries (not run yet: the caller runs
 * them, with its own, in one pass over the bytes, e.g. `checkNarBytes`). Reading stops once more
 * than `limit` bytes came (a NAR claimed small that is not is never held whole: its check fails on
 * the size).
 */
export const wholeNar = <E, R>(nar: Stream.Stream<Uint8Array, E, R>, limit: number): Effect.Effect<{ readonly bytes: Uint8Array; readonly expect: ReadonlyArray<NarExpectation> }, E, R> =>
  Effect.flatMap(planOf(nar), (plan) => plan.whole !== undefined ? Effect.map(plan.whole, (bytes) => ({ bytes, expect: plan.expect })) : Effect.suspend(() => {
    let size = 0
    return Effect.map(Stream.runCollect(Stream.takeUntil(plan.bytes, (chunk) => (size += chunk.length) > limit)), (chunks) =>
      ({ bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), expect: plan.expect }))
  }))

/**
 * The events of a NAR stream, decoded once: the structure, the checks the stream carries and
 * `options`' all run in this pass; the stream fails with the first problem, at the latest when
 * the input ends (so a consumer that commits only after the stream completed never commits a bad
 * NAR).
 */
export const narEvents = <E, R>(nar: Stream.Stream<Uint8Array, E, R>, options: NarCheckOptions = {}, onResult?: OnResult): Stream.Stream<Ev.NarEvent, E | NarCheckError, R> =>
  isCheckedNar(nar) ? Stream.unwrap(Effect.map(nar[PlanId], (p) => eventsOf(p.bytes, withPlan(p, options), onResult))) : eventsOf(nar, options, onResult)

/** The bytes of a NAR stream passed on, checked as `narEvents` checks them; `onEvent` sees each decoded event. */
export const narBytes = <E, R>(nar: Stream.Stream<Uint8Array, E, R>, options: NarCheckOptions = {}, onEvent?: (event: Ev.NarEvent) => void, onResult?: OnResult): Stream.Stream<Uint8Array, E | NarCheckError, R> =>
  isCheckedNar(nar) ? Stream.unwrap(Effect.map(nar[PlanId], (p) => bytesOf(p.bytes, withPlan(p, options), onEvent, onResult))) : bytesOf(nar, options, onEvent, onResult)

/** Runs a NAR stream through the checker and gives its digest (nothing else is kept). */
export const checkNar = <E, R>(nar: Stream.Stream<Uint8Array, E, R>, options: NarCheckOptions = {}): Effect.Effect<NarCheckResult, E | NarCheckError, R> =>
  Effect.suspend(() => {
    let result: NarCheckResult | undefined
    return Effect.map(Stream.runDrain(narBytes(nar, options, undefined, (r) => { result = r })), () => result!)
  })
