/**
 * A `StoreRead` that serves only trusted paths, as a substituter must: each path's info must
 * carry a signature by one of the trusted keys over its fingerprint, or the path must be
 * content-addressed (then its NAR is checked against the address while it streams). Anything
 * else fails with SignatureError, before a byte of its NAR is read. The same check `copyPaths`
 * makes (services/copy.ts), applied by the store itself.
 */
import { Effect, Stream } from "effect"
import { type Signature, checkSignature, withContentAddressCheck, type StoreReadApi } from "b3/plugin"

export const trustedRead = (read: StoreReadApi, trusted: ReadonlyArray<Signature.PublicKey>): StoreReadApi => {
  const checked = (path: Parameters<StoreReadApi["queryPathInfo"]>[0]) => Effect.flatMap(read.queryPathInfo(path), (info) =>
    Effect.map(checkSignature(info, read.storeDir, trusted), (byContentAddress) => ({ info, byContentAddress })))
  return {
    ...read,
    queryPathInfo: (path) => Effect.map(checked(path), ({ info }) => info),
    narFromPath: (path) => Stream.unwrap(Effect.map(checked(path), ({ info, byContentAddress }) =>
      byContentAddress ? withContentAddressCheck(info, read.storeDir, read.narFromPath(path)) : read.narFromPath(path)))
  }
}
