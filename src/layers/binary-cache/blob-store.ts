/**
 * The storage under a binary cache: named blobs (`nix-cache-info`, `<hash>.narinfo`,
 * `nar/<filehash>.nar.xz`, …). A directory, an HTTP server and an S3 bucket each implement it;
 * binary-cache-store.ts speaks Nix's cache protocol on top of any of them.
 */
import type { Effect, Option, Scope, Stream } from "effect"
import type { BadStoreUri, StoreError, StoreIoError } from "../../services/store-errors.ts"
import type { StoreUri } from "../../services/store-uri.ts"

export interface BlobStore {
  /** Where the blobs are, for messages. */
  readonly uri: string
  readonly exists: (key: string) => Effect.Effect<boolean, StoreIoError>
  /** The blob's bytes, or none when it does not exist. */
  readonly getBytes: (key: string) => Effect.Effect<Option.Option<Uint8Array>, StoreIoError>
  /** The blob streamed; a missing blob fails with StoreIoError. */
  readonly getStream: (key: string) => Stream.Stream<Uint8Array, StoreIoError>
  /**
   * Stores a blob from a local file (moved into place when the backend allows it: the file is
   * consumed). Readers never see a partial blob.
   */
  readonly putFile: (key: string, file: string, contentType: string) => Effect.Effect<void, StoreIoError>
  readonly putBytes: (key: string, bytes: Uint8Array, contentType: string) => Effect.Effect<void, StoreIoError>
  /**
   * Stores a blob straight from a stream of unknown length, where the backend can (S3 multipart
   * upload): readers see it only once complete; a failed or interrupted stream leaves nothing.
   * `sizeHint` is about how big it will be (to size the parts). A content-addressed backend (IPFS)
   * may store the blob under a key of its own choosing, derived from the contents, and return it.
   */
  readonly putStream?: <E, R>(key: string, body: Stream.Stream<Uint8Array, E, R>, contentType: string, sizeHint?: number) => Effect.Effect<string | void, StoreIoError | E, R>
  /**
   * Bytes [start, start + length) of a blob (the chunk store reads packs this way); fails with
   * StoreIoError when the blob is missing or shorter.
   */
  readonly getRange?: (key: string, start: number, length: number) => Effect.Effect<Uint8Array, StoreIoError>
  /**
   * Stores a blob made of these byte arrays, written without joining them (and off the main
   * thread where the backend can). Readers never see a partial blob.
   */
  readonly putParts?: (key: string, parts: ReadonlyArray<Uint8Array>, contentType: string) => Effect.Effect<void, StoreIoError>
  /** Deletes a blob (a missing one is not an error). */
  readonly remove?: (key: string) => Effect.Effect<void, StoreIoError>
  /** The local file holding a blob, for backends that keep blobs as files (a server can send it directly). */
  readonly localPath?: (key: string) => string
  /** A directory for spooling uploads (on the same file system as the blobs where there is one). */
  readonly spoolDir: string
}

/**
 * Opens the blobs a store URI names (`s3://bucket?…`), for the life of the scope: how a plugin
 * lends its storage to stores built on blobs (`chunked+s3://`). `params` are the URI options it reads.
 */
export interface BlobStoreOpener {
  readonly params: ReadonlyArray<string>
  readonly open: (uri: StoreUri, options: { readonly readOnly: boolean; readonly spoolDir: string }) =>
    Effect.Effect<BlobStore, StoreError | BadStoreUri, Scope.Scope>
}
