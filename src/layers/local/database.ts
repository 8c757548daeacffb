/**
 * Queries and updates of the Nix store database. Synchronous (node:sqlite); callers wrap them
 * in effects. Rows use Nix's encodings: `hash` is `sha256:<base16>`, `deriver` a full path,
 * `sigs` space-separated, `ca` a content-address string.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite"
import { Result } from "effect"
import * as ContentAddress from "../../core/content-address.ts"
import * as Hash from "../../core/hash.ts"
import * as Realisation from "../../core/realisation.ts"
import * as StorePath from "../../core/store-path.ts"
import type { PathInfo } from "../../core/path-info.ts"

interface ValidPathRow {
  id: number
  path: string
  hash: string
  registrationTime: number
  deriver: string | null
  narSize: number | null
  ultimate: number | null
  sigs: string | null
  ca: string | null
}

/** A row that does not decode is reported with this reason (the store is corrupt). */
export type RowProblem = { readonly path: string; readonly reason: string }

export class StoreDatabase {
  readonly #db: DatabaseSync
  readonly #storeDir: string
  readonly #byPath: StatementSync
  readonly #refsOf: StatementSync
  readonly #referrersOf: StatementSync
  readonly #byPrefix: StatementSync
  readonly #insertPath: StatementSync
  readonly #insertRef: StatementSync
  readonly #idOf: StatementSync
  readonly #setSigs: StatementSync
  readonly #insertOutput: StatementSync
  readonly #deletePath: StatementSync
  readonly #allPaths: StatementSync
  readonly #realisation: StatementSync
  readonly #realisationRefs: StatementSync
  readonly #insertRealisation: StatementSync
  readonly #updateRealisation: StatementSync
  readonly #insertRealisationRef: StatementSync
  readonly #derivers: StatementSync
  #validChunk: StatementSync | undefined
  #depth = 0

  constructor(db: DatabaseSync, storeDir: string) {
    this.#db = db
    this.#storeDir = storeDir
    this.#byPath = db.prepare("select * from ValidPaths where path = ?")
    this.#refsOf = db.prepare("select p.path as path from Refs r join ValidPaths p on p.id = r.reference where r.referrer = ?")
    this.#referrersOf = db.prepare(
      "select p.path as path from Refs r join ValidPaths p on p.id = r.referrer where r.reference = (select id from ValidPaths where path = ?)")
    this.#byPrefix = db.prepare("select path from ValidPaths where path >= ? order by path limit 1")
    this.#insertPath = db.prepare(
      "insert into ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca) values (?, ?, ?, ?, ?, ?, ?, ?)")
    this.#insertRef = db.prepare("insert or replace into Refs (referrer, reference) values (?, ?)")
    this.#idOf = db.prepare("select id from ValidPaths where path = ?")
    this.#setSigs = db.prepare("update ValidPaths set sigs = ? where path = ?")
    this.#insertOutput = db.prepare("insert or replace into DerivationOutputs (drv, id, path) values (?, ?, ?)")
    this.#deletePath = db.prepare("delete from ValidPaths where path = ?")
    this.#allPaths = db.prepare("select path from ValidPaths order by path")
    // The statements of Nix 2.8's LocalStore for realisations (drvPath holds the DrvOutput's hash).
    this.#realisation = db.prepare(
      "select Realisations.id as id, Output.path as path, Realisations.signatures as signatures from Realisations " +
      "inner join ValidPaths as Output on Output.id = Realisations.outputPath where drvPath = ? and outputName = ?")
    this.#realisationRefs = db.prepare(
      "select drvPath, outputName from Realisations join RealisationsRefs on realisationReference = Realisations.id where referrer = ?")
    this.#insertRealisation = db.prepare(
      "insert into Realisations (drvPath, outputName, outputPath, signatures) values (?, ?, (select id from ValidPaths where path = ?), ?)")
    this.#updateRealisation = db.prepare("update Realisations set signatures = ? where drvPath = ? and outputName = ?")
    this.#insertRealisationRef = db.prepare(
      "insert or replace into RealisationsRefs (referrer, realisationReference) values (" +
      "(select id from Realisations where drvPath = ? and outputName = ?), (select id from Realisations where drvPath = ? and outputName = ?))")
    this.#derivers = db.prepare("select v.path as path from DerivationOutputs d join ValidPaths v on v.id = d.drv where d.path = ? order by v.path")
  }

  close(): void { this.#db.close() }

  #print(path: StorePath.StorePath) { return StorePath.print(path, this.#storeDir) }

  #decode(row: ValidPathRow): Result.Result<PathInfo, RowProblem> {
    const fail = (reason: string) => Result.fail({ path: row.path, reason })
    const path = StorePath.parse(row.path, this.#storeDir)
    if (Result.isFailure(path)) return fail(path.failure.reason)
    const narHash = Hash.parse(row.hash)
    if (Result.isFailure(narHash)) return fail(`bad hash: ${narHash.failure.reason}`)
    const references: Array<StorePath.StorePath> = []
    for (const ref of this.#refsOf.all(row.id) as Array<{ path: string }>) {
      const parsed = StorePath.parse(ref.path, this.#storeDir)
      if (Result.isFailure(parsed)) return fail(`bad reference: ${parsed.failure.reason}`)
      references.push(parsed.success)
    }
    let deriver: StorePath.StorePath | undefined
    if (row.deriver) {
      const parsed = StorePath.parse(row.deriver, this.#storeDir)
      if (Result.isSuccess(parsed)) deriver = parsed.success
    }
    let ca: ContentAddress.ContentAddress | undefined
    if (row.ca) {
      const parsed = ContentAddress.parse(row.ca)
      if (Result.isFailure(parsed)) return fail(`bad content address: ${parsed.failure.reason}`)
      ca = parsed.success
    }
    return Result.succeed({
      path: path.success,
      narHash: narHash.success,
      narSize: row.narSize ?? 0,
      references: references.sort(StorePath.compare),
      deriver,
      signatures: row.sigs ? row.sigs.split(" ").filter((s) => s.length > 0) : [],
      ca,
      registrationTime: row.registrationTime,
      ultimate: row.ultimate === 1
    })
  }

  queryPathInfo(path: StorePath.StorePath): Result.Result<PathInfo, RowProblem> | undefined {
    const row = this.#byPath.get(this.#print(path)) as ValidPathRow | undefined
    return row ? this.#decode(row) : undefined
  }

  isValid(path: StorePath.StorePath): boolean {
    return this.#idOf.get(this.#print(path)) !== undefined
  }

  /** The valid ones of `paths`, in the order given, asked a few hundred at a time. */
  validOf(paths: ReadonlyArray<StorePath.StorePath>): ReadonlyArray<StorePath.StorePath> {
    if (paths.length < 16) return paths.filter((p) => this.isValid(p))
    const valid = new Set<string>()
    const chunk = 500
    // one prepared statement for every chunk: a shorter one is padded with NULLs (which match nothing)
    const statement = this.#validChunk ??= this.#db.prepare(`select path from ValidPaths where path in (${Array(chunk).fill("?").join(",")})`)
    for (let i = 0; i < paths.length; i += chunk) {
      const printed: Array<string | null> = paths.slice(i, i + chunk).map((p) => this.#print(p))
      while (printed.length < chunk) printed.push(null)
      for (const row of statement.all(...printed) as Array<{ path: string }>) valid.add(row.path)
    }
    return paths.filter((p) => valid.has(this.#print(p)))
  }

  referrers(path: StorePath.StorePath): ReadonlyArray<string> {
    return this.referrersOfPath(this.#print(path))
  }

  pathFromHashPart(hashPart: string): string | undefined {
    const prefix = `${this.#storeDir}/${hashPart}`
    const row = this.#byPrefix.get(prefix) as { path: string } | undefined
    return row && row.path.startsWith(prefix + "-") ? row.path : undefined
  }

  /** References of a valid path, by full path. */
  referencesOf(path: string): ReadonlyArray<string> {
    const row = this.#idOf.get(path) as { id: number } | undefined
    return row ? (this.#refsOf.all(row.id) as Array<{ path: string }>).map((r) => r.path) : []
  }

  /** Referrers of a valid path, by full path. */
  referrersOfPath(path: string): ReadonlyArray<string> {
    return (this.#referrersOf.all(path) as Array<{ path: string }>).map((r) => r.path)
  }

  /** Valid derivations that name `path` as one of their outputs. */
  validDerivers(path: string): ReadonlyArray<string> {
    return (this.#derivers.all(path) as Array<{ path: string }>).map((r) => r.path)
  }

  allValidPaths(): ReadonlyArray<string> {
    return (this.#allPaths.all() as Array<{ path: string }>).map((r) => r.path)
  }

  /**
   * Runs `f` in a write transaction taken up front (BEGIN IMMEDIATE), so concurrent writers in
   * other processes queue on SQLite's lock. Nested calls join the outer transaction.
   */
  immediate<A>(f: () => A): A {
    if (this.#depth > 0) return f()
    this.#db.exec("begin immediate")
    this.#depth++
    try {
      const result = f()
      this.#db.exec("commit")
      return result
    } catch (error) {
      this.#db.exec("rollback")
      throw error
    } finally {
      this.#depth--
    }
  }

  /** Registers valid paths (their references must be valid or among `infos`). */
  register(infos: ReadonlyArray<PathInfo>, now: number, derivationOutputs: ReadonlyMap<string, Readonly<Record<string, string>>> = new Map()): void {
    this.immediate(() => {
      for (const info of infos) {
        this.#insertPath.run(
          this.#print(info.path),
          Hash.print(info.narHash, "base16"),
          info.registrationTime ?? now,
          info.deriver ? this.#print(info.deriver) : null,
          info.narSize,
          info.ultimate ? 1 : null,
          info.signatures.length > 0 ? info.signatures.join(" ") : null,
          info.ca ? ContentAddress.print(info.ca) : null
        )
      }
      for (const info of infos) {
        const id = (this.#idOf.get(this.#print(info.path)) as { id: number }).id
        for (const ref of info.references) {
          const refRow = this.#idOf.get(this.#print(ref)) as { id: number } | undefined
          if (!refRow) throw new Error(`cannot register '${this.#print(info.path)}': its reference '${this.#print(ref)}' is not valid`)
          this.#insertRef.run(id, refRow.id)
        }
        const outputs = derivationOutputs.get(this.#print(info.path))
        if (outputs) for (const [name, out] of Object.entries(outputs)) this.#insertOutput.run(id, name, out)
      }
    })
  }

  #realisationCore(id: Realisation.DrvOutput): { readonly rowId: number; readonly path: string; readonly signatures: ReadonlyArray<string> } | undefined {
    const row = this.#realisation.get(Hash.print(id.drvHash, "base16"), id.outputName) as { id: number; path: string; signatures: string | null } | undefined
    return row && { rowId: row.id, path: row.path, signatures: row.signatures ? row.signatures.split(" ").filter((s) => s !== "") : [] }
  }

  /** A derivation output's realisation, with the realisations it depends on (Nix's queryRealisation_). */
  queryRealisation(id: Realisation.DrvOutput): Result.Result<Realisation.Realisation, RowProblem> | undefined {
    const core = this.#realisationCore(id)
    if (core === undefined) return undefined
    const fail = (reason: string) => Result.fail({ path: core.path, reason })
    const outPath = StorePath.parse(core.path, this.#storeDir)
    if (Result.isFailure(outPath)) return fail(outPath.failure.reason)
    const deps = new Map<string, StorePath.StorePath>()
    for (const ref of this.#realisationRefs.all(core.rowId) as Array<{ drvPath: string; outputName: string }>) {
      const depId = Realisation.parseDrvOutput(`${ref.drvPath}!${ref.outputName}`)
      if (Result.isFailure(depId)) return fail(depId.failure.reason)
      const dep = this.#realisationCore(depId.success)
      const depPath = dep && StorePath.parse(dep.path, this.#storeDir)
      if (depPath === undefined || Result.isFailure(depPath)) return fail(`the realisation it depends on, '${ref.drvPath}!${ref.outputName}', is missing`)
      deps.set(Realisation.printDrvOutput(depId.success), depPath.success)
    }
    return Result.succeed(Realisation.make(id, outPath.success, { signatures: core.signatures, dependentRealisations: deps }))
  }

  /**
   * Records a realisation as Nix's `registerDrvOutput` does: a compatible one already there gains
   * the signatures; an incompatible one, or a missing dependency, is an error (thrown).
   */
  registerRealisation(r: Realisation.Realisation): void {
    this.immediate(() => {
      const hash = Hash.print(r.id.drvHash, "base16")
      const key = Realisation.printDrvOutput(r.id)
      const old = this.queryRealisation(r.id)
      if (old !== undefined && Result.isSuccess(old)) {
        const problem = Realisation.conflict(old.success, r, (p) => this.#print(p))
        if (problem !== undefined) throw new Error(problem)
        const signatures = [...new Set([...old.success.signatures, ...r.signatures])].sort()
        this.#updateRealisation.run(signatures.join(" "), hash, r.id.outputName)
      } else {
        if (!this.isValid(r.outPath)) throw new Error(`cannot register the realisation '${key}': its output '${this.#print(r.outPath)}' is not valid`)
        this.#insertRealisation.run(hash, r.id.outputName, this.#print(r.outPath), r.signatures.join(" "))
      }
      for (const [depKey, depPath] of r.dependentRealisations) {
        const depId = Realisation.parseDrvOutput(depKey)
        if (Result.isFailure(depId)) throw new Error(depId.failure.message)
        const local = this.#realisationCore(depId.success)
        if (local === undefined) throw new Error(`unable to register the derivation '${key}' as it depends on the non existent '${depKey}'`)
        if (local.path !== this.#print(depPath)) {
          throw new Error(`unable to register the derivation '${key}' as it depends on a realisation of '${depKey}' that doesn’t match what we have locally`)
        }
        this.#insertRealisationRef.run(hash, r.id.outputName, Hash.print(depId.success.drvHash, "base16"), depId.success.outputName)
      }
    })
  }

  setSignatures(path: StorePath.StorePath, signatures: ReadonlyArray<string>): void {
    this.#setSigs.run(signatures.length > 0 ? signatures.join(" ") : null, this.#print(path))
  }

  /** Removes a path's row (its referrers must be gone first). */
  deletePath(path: string): void {
    this.#deletePath.run(path)
  }
}
