/**
 * The builder's environment exactly as Nix 2.8 computes it (`initEnv`, `initTmpDir`,
 * `writeStructuredAttrs` in local-derivation-goal.cc), and the files that go with it in the build
 * directory (passAsFile, .attrs.json/.attrs.sh). Pure: the runner writes the files and passes the
 * variables in this order (Nix's std::map order: byte-wise by key).
 */
import * as ByteString from "../../core/byte-string.ts"
import * as Hash from "../../core/hash.ts"
import * as NixBase32 from "../../core/nixbase32.ts"

export const sandboxBuildDir = "/build"

export interface EnvironmentInput {
  readonly storeDir: string
  readonly cores: number
  readonly env: Readonly<Record<string, string>>
  readonly fixedOutput: boolean
  /** An impure derivation: impureEnvVars pass through as for fixed-output ones, without NIX_OUTPUT_CHECKED. */
  readonly impure?: boolean | undefined
  readonly structuredAttrs?: { readonly json: string; readonly sh: string } | undefined
  /** The build directory's path on the host (Nix 2.8 puts it, not /build, in NIX_ATTRS_*_FILE). */
  readonly hostBuildDir: string
  readonly hostEnv: Readonly<Record<string, string | undefined>>
}

/** A file for the build directory, owned by the build user, mode 0644. */
export interface BuildDirFile {
  readonly name: string
  readonly contents: string
}

export interface BuilderEnvironment {
  readonly variables: ReadonlyArray<readonly [string, string]>
  readonly files: ReadonlyArray<BuildDirFile>
}

/** Nix's tokenizeString with its default separators. */
const tokenize = (s: string): Array<string> => s.split(/[ \t\n\r]+/).filter((t) => t.length > 0)

/** `.attr-<nix-base32 sha256 of the attribute name>` */
export const passAsFileName = (attribute: string): string =>
  `.attr-${NixBase32.encode(Hash.hashBytes("sha256", attribute).bytes)}`

const byteOrder = ByteString.compare

/** The impureEnvVars attribute: a whitespace-separated string, or a JSON list with structured attrs. */
const impureEnvVars = (input: EnvironmentInput): Array<string> => {
  if (input.structuredAttrs === undefined) return tokenize(input.env["impureEnvVars"] ?? "")
  try {
    const value: unknown = JSON.parse(input.structuredAttrs.json)?.impureEnvVars
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : []
  } catch {
    return []
  }
}

export const builderEnvironment = (input: EnvironmentInput): BuilderEnvironment => {
  const env = new Map<string, string>()
  const files: Array<BuildDirFile> = []
  env.set("PATH", "/path-not-set")
  env.set("HOME", "/homeless-shelter")
  env.set("NIX_STORE", input.storeDir)
  env.set("NIX_BUILD_CORES", String(input.cores))
  if (input.structuredAttrs === undefined) {
    const passAsFile = new Set(tokenize(input.env["passAsFile"] ?? ""))
    for (const [name, value] of Object.entries(input.env)) {
      if (!passAsFile.has(name)) {
        env.set(name, value)
      } else {
        const file = passAsFileName(name)
        files.push({ name: file, contents: value })
        env.set(`${name}Path`, `${sandboxBuildDir}/${file}`)
      }
    }
  }
  env.set("NIX_BUILD_TOP", sandboxBuildDir)
  for (const name of ["TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD"]) env.set(name, sandboxBuildDir)
  if (input.fixedOutput) env.set("NIX_OUTPUT_CHECKED", "1")
  if (input.fixedOutput || input.impure) {
    for (const name of impureEnvVars(input)) env.set(name, input.hostEnv[name] ?? "")
  }
  env.set("NIX_LOG_FD", "2")
  env.set("TERM", "xterm-256color")
  if (input.structuredAttrs !== undefined) {
    files.push({ name: ".attrs.sh", contents: input.structuredAttrs.sh })
    env.set("NIX_ATTRS_SH_FILE", `${input.hostBuildDir}/.attrs.sh`)
    files.push({ name: ".attrs.json", contents: input.structuredAttrs.json })
    env.set("NIX_ATTRS_JSON_FILE", `${input.hostBuildDir}/.attrs.json`)
  }
  const variables = [...env.entries()].sort(([a], [b]) => byteOrder(a, b))
  return { variables, files }
}
