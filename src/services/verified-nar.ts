/**
 * A NAR checked against a PathInfo while it streams into (or out of) a store: its structure, its
 * hash and its size, in the one pass of src/nar/check.ts. The checks finish with the stream: a
 * consumer that commits only after the stream has completed never commits a bad path. When the
 * stream already carries checks (a NAR read from a cache, a content address added by `copy`),
 * they run in the same pass: the NAR is decoded and hashed once however many layers check it.
 */
import type { Stream } from "effect"
import * as StorePath from "../core/store-path.ts"
import { expectNar, isCheckedNar, narBytes, narEvents, type NarExpectation, type OnResult } from "../nar/check.ts"
import type { NarEvent } from "../nar/events.ts"
import type { PathInfo } from "../core/path-info.ts"
import type { StoreError } from "./store-errors.ts"

/** What a path's NAR must be: its NAR hash and size. */
export const expectationOf = (info: PathInfo, storeDir: string): NarExpectation =>
  ({ path: StorePath.print(info.path, storeDir), narHash: info.narHash, narSize: info.narSize })

/**
 * What a content-addressed path's contents must hash to (nothing when it has no content address);
 * a path that refers to itself (a content-addressed derivation output) is hashed modulo its own hash part.
 */
export const contentExpectationOf = (info: PathInfo, storeDir: string): NarExpectation => ({
  path: StorePath.print(info.path, storeDir),
  ca: info.ca,
  ...(info.ca?._tag === "Fixed" && info.references.some((r) => StorePath.equals(r, info.path)) ? { caModulo: info.path.hashPart } : {})
})

/** The NAR's bytes passed on, checked against `info`; `onEvent` sees every decoded event (e.g. to build a listing). */
export const verifiedNar = <E, R>(
  info: PathInfo,
  storeDir: string,
  nar: Stream.Stream<Uint8Array, E, R>,
  onEvent?: (event: NarEvent) => void
): Stream.Stream<Uint8Array, E | StoreError, R> => narBytes(nar, { expect: [expectationOf(info, storeDir)] }, onEvent)

/**
 * For a consumer that hashes the NAR's bytes itself, elsewhere (the chunk store, on a worker
 * thread): the bytes checked against `info` for structure and size only — it must then compare the
 * hash it computed with `info.narHash` before it commits anything. Undefined when the stream carries
 * checks of its own (they hash it in this pass anyway: use `verifiedNar`).
 */
export const verifiedNarButHash = <E, R>(
  info: PathInfo,
  storeDir: string,
  nar: Stream.Stream<Uint8Array, E, R>
): Stream.Stream<Uint8Array, E | StoreError, R> | undefined =>
  isCheckedNar(nar) ? undefined : narBytes(nar, { expect: [{ path: StorePath.print(info.path, storeDir), narSize: info.narSize }], hashNar: false })

/** The NAR's events, decoded once and checked against `info` in the same pass. */
export const verifiedNarEvents = <E, R>(
  info: PathInfo,
  storeDir: string,
  nar: Stream.Stream<Uint8Array, E, R>,
  onResult?: OnResult
): Stream.Stream<NarEvent, E | StoreError, R> => narEvents(nar, { expect: [expectationOf(info, storeDir)] }, onResult)

/** The NAR stream with the check that its contents match `info.ca` added (a no-op without one). */
export const withContentAddressCheck = <E, R>(info: PathInfo, storeDir: string, nar: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | StoreError, R> =>
  info.ca ? expectNar(nar, contentExpectationOf(info, storeDir)) : nar
