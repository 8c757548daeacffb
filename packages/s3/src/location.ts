/**
 * Where an `s3://` cache is, from its store URI, spelled as Nix spells it:
 * `s3://BUCKET?region=…&endpoint=…&scheme=http|https&profile=…&addressing-style=path|virtual|auto`
 * plus `buffer-size` (multipart part size in bytes, Nix's name). Pure: no I/O, no credentials
 * (those come from the AWS environment variables and shared config files when the client is made).
 */
import { Result } from "effect"
import { BadStoreUri, type StoreUri } from "b3/plugin"

export const s3Params = ["region", "endpoint", "scheme", "profile", "addressing-style", "buffer-size"] as const

/** S3's smallest part (all parts but the last must be at least this big). */
export const minPartSize = 5 * 1024 * 1024
/** S3's largest part. */
export const maxPartSize = 5 * 1024 * 1024 * 1024
/** Default part size: small enough that a few parts in flight keep memory flat. */
export const defaultPartSize = 8 * 1024 * 1024

export interface S3Location {
  readonly bucket: string
  readonly region: string
  /** `http(s)://host[:port]` of a non-AWS server, or undefined for AWS itself. */
  readonly endpoint: string | undefined
  /** Path-style (`endpoint/bucket/key`) rather than virtual-host addressing (`bucket.endpoint/key`). */
  readonly forcePathStyle: boolean
  /** The shared-config profile to take credentials from (default: AWS_PROFILE or `default`). */
  readonly profile: string | undefined
  readonly partSize: number
}

const bucketRe = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

export const parseS3Location = (uri: StoreUri, env: NodeJS.ProcessEnv = process.env): Result.Result<S3Location, BadStoreUri> => {
  const bad = (reason: string) => Result.fail(new BadStoreUri({ uri: uri.raw, reason }))
  const bucket = uri.location
  if (!bucketRe.test(bucket)) return bad(`'${bucket}' is not an S3 bucket name (3-63 characters: a-z, 0-9, '.', '-'; no path)`)
  const scheme = uri.params.get("scheme") ?? "https"
  if (scheme !== "http" && scheme !== "https") return bad(`scheme must be http or https, not '${scheme}'`)
  const rawEndpoint = uri.params.get("endpoint") ?? undefined
  let endpoint: string | undefined
  if (rawEndpoint !== undefined) {
    const withScheme = /^[a-z]+:\/\//.test(rawEndpoint) ? rawEndpoint : `${scheme}://${rawEndpoint}`
    let parsed: URL
    try { parsed = new URL(withScheme) } catch { return bad(`endpoint '${rawEndpoint}' is not host[:port] or a URL`) }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return bad(`endpoint '${rawEndpoint}' must be http or https`)
    endpoint = `${parsed.protocol}//${parsed.host}`
  }
  const style = uri.params.get("addressing-style") ?? "auto"
  if (style !== "path" && style !== "virtual" && style !== "auto") return bad(`addressing-style must be path, virtual or auto, not '${style}'`)
  const sizeText = uri.params.get("buffer-size")
  let partSize = defaultPartSize
  if (sizeText !== null) {
    if (!/^[0-9]{1,12}$/.test(sizeText) || Number(sizeText) < minPartSize || Number(sizeText) > maxPartSize) {
      return bad(`buffer-size must be a number of bytes from ${minPartSize} (5 MiB) to ${maxPartSize} (5 GiB)`)
    }
    partSize = Number(sizeText)
  }
  return Result.succeed({
    bucket,
    region: uri.params.get("region") ?? env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? "us-east-1",
    endpoint,
    // Non-AWS servers (MinIO, s3rver, Ceph…) rarely have wildcard DNS for buckets.
    forcePathStyle: style === "path" || (style === "auto" && endpoint !== undefined),
    profile: uri.params.get("profile") ?? undefined,
    partSize
  })
}

/** The part size for an object of about `sizeHint` bytes: S3 allows at most 10,000 parts. */
export const partSizeFor = (configured: number, sizeHint: number | undefined): number => {
  if (sizeHint === undefined) return configured
  const needed = Math.ceil((sizeHint * 1.05 + 1024 * 1024) / 9_000)
  return Math.min(maxPartSize, Math.max(configured, Math.ceil(needed / (1024 * 1024)) * 1024 * 1024))
}
