/**
 * One unit of parallel work while dumping a tree: serialise (part of) one directory's entries.
 * Small files are read and copied into the output; subdirectories and big files are left as marks
 * for the coordinator (from-path.ts) to fill in, in order. Runs in a worker thread or inline.
 *
 * `directoryJobRunner` is SELF-CONTAINED on purpose (no imports, no outer references): its source text
 * is shipped to worker threads. It gets node:fs and the NarWriter class as arguments.
 */
import type * as NodeFs from "node:fs"
import type { NarWriter as NarWriterClass } from "../nar-writer.ts"

export type FsPath = string | Buffer

export interface DirJob {
  readonly dir: FsPath
  /** the first job of a directory lists it and writes the directory's opening tokens */
  readonly first: boolean
  /** for later jobs: the entries (sorted) this job covers, and their kinds */
  readonly names?: Array<FsPath>
  readonly kinds?: Uint8Array
}

export interface SubdirMark { readonly mark: "dir"; readonly path: FsPath }
/** A file too big to copy in a job: `fd` is open for the coordinator to stream (and close). */
export interface BigFileMark { readonly mark: "file"; readonly path: FsPath; readonly fd: number; readonly size: number }
export type Segment = Uint8Array | SubdirMark | BigFileMark

export interface JobFailure {
  readonly type: "unsupported" | "io"
  readonly path: string
  readonly operation: string
  readonly code: string
  readonly message: string
}

export interface DirJobResult {
  readonly segments: Array<Segment>
  /** entries left for later jobs (the job stopped at its byte or entry budget) */
  readonly rest?: { readonly names: Array<FsPath>; readonly kinds: Uint8Array } | undefined
  readonly failure?: JobFailure | undefined
}

export interface JobLimits {
  /** files up to this size are copied by the job; bigger ones become marks */
  readonly smallFileMax: number
  /** stop after this many output bytes … */
  readonly jobBytes: number
  /** … or this many entries */
  readonly jobEntries: number
}

export function directoryJobRunner(fs: typeof NodeFs, NarWriter: typeof NarWriterClass, limits: JobLimits) {
  const seq = NarWriter.seq
  // entry kinds as readdir reports them
  const KIND_FILE = 1, KIND_DIR = 2, KIND_SYMLINK = 3, KIND_OTHER = 4
  // O_NOFOLLOW: a file swapped for a symlink is not followed; O_NONBLOCK: one swapped for a FIFO does not hang
  const O_READ = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK
  const slash = Buffer.from("/")
  const join = (dir: FsPath, name: FsPath): FsPath =>
    typeof dir === "string" && typeof name === "string"
      ? dir + "/" + name
      : Buffer.concat([typeof dir === "string" ? Buffer.from(dir) : dir, slash, typeof name === "string" ? Buffer.from(name) : name])
  const show = (p: FsPath) => typeof p === "string" ? p : p.toString()
  const ioFailure = (error: unknown, operation: string, path: FsPath): JobFailure => {
    const e = error as { code?: string; message?: string }
    return { type: "io", path: show(path), operation, code: e?.code ?? "EUNKNOWN", message: String(e?.message ?? error) }
  }
  const kindOf = (d: NodeFs.Dirent<string> | NodeFs.Dirent<Buffer>): number =>
    d.isFile() ? KIND_FILE : d.isDirectory() ? KIND_DIR : d.isSymbolicLink() ? KIND_SYMLINK : KIND_OTHER
  const otherKind = (mode: number): string => {
    const t = mode & 0o170000
    return t === 0o140000 ? "socket" : t === 0o10000 ? "FIFO" : t === 0o20000 ? "character device" : t === 0o60000 ? "block device" : "special file"
  }
  const surrogate = /[\uD800-\uDFFF]/
  const lossy = "\uFFFD"

  /** Lists a directory sorted bytewise on the names' bytes (not JS string order). */
  const list = (dir: FsPath): { names: Array<FsPath>; kinds: Uint8Array } => {
    if (typeof dir === "string") {
      const dirents = fs.readdirSync(dir, { withFileTypes: true })
      let plain = true
      for (const d of dirents) {
        if (d.name.includes(lossy)) return listBytes(dir)
        if (plain && surrogate.test(d.name)) plain = false
      }
      if (plain) dirents.sort((a, b) => a.name < b.name ? -1 : 1)
      else dirents.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))
      const kinds = new Uint8Array(dirents.length)
      for (let i = 0; i < dirents.length; i++) kinds[i] = kindOf(dirents[i]!)
      return { names: dirents.map((d) => d.name), kinds }
    }
    return listBytes(dir)
  }
  /** Names that are not valid UTF-8 stay bytes (and so do all paths below them). */
  const listBytes = (dir: FsPath): { names: Array<FsPath>; kinds: Uint8Array } => {
    const dirents = fs.readdirSync(dir, { withFileTypes: true, encoding: "buffer" })
    dirents.sort((a, b) => Buffer.compare(a.name, b.name))
    const kinds = new Uint8Array(dirents.length)
    for (let i = 0; i < dirents.length; i++) kinds[i] = kindOf(dirents[i]!)
    return { names: dirents.map((d) => d.name), kinds }
  }

  /** Runs a job, writing into `buffer` first when given (recycled output memory). */
  return (job: DirJob, buffer?: ArrayBuffer): DirJobResult => {
    const w = new NarWriter(limits.jobBytes + limits.smallFileMax + 4096, buffer)
    const segments: Array<Segment> = []
    const cut = () => { for (const c of w.take()) segments.push(c) }
    let names: Array<FsPath>, kinds: Uint8Array
    if (job.first) {
      try {
        ({ names, kinds } = list(job.dir))
      } catch (error) {
        return { segments, failure: ioFailure(error, "reading directory", job.dir) }
      }
      w.raw(seq.directory)
    } else {
      names = job.names!
      kinds = job.kinds!
    }
    for (let i = 0; i < names.length; i++) {
      if (i >= limits.jobEntries || w.written >= limits.jobBytes) {
        cut()
        return { segments, rest: { names: names.slice(i), kinds: kinds.slice(i) } }
      }
      const name = names[i]!
      const path = join(job.dir, name)
      w.raw(seq.entryName)
      if (typeof name === "string") w.text(name)
      else w.string(name)
      w.raw(seq.node)
      const kind = kinds[i]!
      if (kind === KIND_DIR) {
        cut()
        segments.push({ mark: "dir", path })
        w.raw(seq.close)
      } else if (kind === KIND_SYMLINK) {
        let target: Buffer
        try {
          target = fs.readlinkSync(path, { encoding: "buffer" })
        } catch (error) {
          cut()
          return { segments, failure: ioFailure(error, "reading symlink", path) }
        }
        w.raw(seq.symlink)
        w.string(target)
        w.raw(seq.closeClose)
      } else if (kind === KIND_OTHER) {
        cut()
        let mode = 0
        try { mode = fs.lstatSync(path).mode } catch (error) { return { segments, failure: ioFailure(error, "reading", path) } }
        return { segments, failure: { type: "unsupported", path: show(path), operation: "dump", code: "", message: otherKind(mode) } }
      } else {
        let fd: number
        try {
          fd = fs.openSync(path, O_READ)
        } catch (error) {
          cut()
          return { segments, failure: ioFailure(error, "opening", path) }
        }
        let keepOpen = false
        try {
          const st = fs.fstatSync(fd)
          if (!st.isFile()) {
            cut()
            return { segments, failure: { type: "unsupported", path: show(path), operation: "dump", code: "", message: otherKind(st.mode) } }
          }
          const size = st.size
          w.raw(st.mode & 0o100 ? seq.executable : seq.regular)
          w.u64(size)
          if (size > limits.smallFileMax) {
            cut()
            segments.push({ mark: "file", path, fd, size })
            keepOpen = true
          } else if (size > 0) {
            w.ensure(size)
            let done = 0
            while (done < size) {
              const n = fs.readSync(fd, w.buf, w.pos + done, size - done, done)
              if (n === 0) {
                cut()
                return { segments, failure: { type: "io", path: show(path), operation: "reading", code: "EIO", message: `file shrank while being read (expected ${size} bytes, got ${done})` } }
              }
              done += n
            }
            w.pos += size
            w.written += size
          }
          w.pad(size)
          w.raw(seq.closeClose)
        } catch (error) {
          cut()
          return { segments, failure: ioFailure(error, "reading", path) }
        } finally {
          if (!keepOpen) fs.closeSync(fd)
        }
      }
    }
    cut()
    return { segments }
  }
}
