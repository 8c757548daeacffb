/**
 * Helpers for end-to-end S3 tests: b3 run asynchronously (the test's S3 proxy lives in the same
 * process, so a blocking spawn would stall it), with its peak RSS measured by /usr/bin/time, and a
 * check that every narinfo in a bucket points at a complete NAR.
 */
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { b3Bin } from "./b3.ts"
import { s3Credentials } from "./s3-server.ts"

export interface AsyncB3Result {
  readonly status: number
  readonly stdout: string
  readonly stderr: string
  /** Peak resident set size of b3 in KiB (from /usr/bin/time -f %M). */
  readonly maxRssKiB: number
}

/** The environment b3 needs to reach the test server, and no other AWS configuration. */
export const s3Env = (scratch: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...process.env, ...s3Credentials, AWS_EC2_METADATA_DISABLED: "true",
  AWS_CONFIG_FILE: `${scratch}/no-aws-config`, AWS_SHARED_CREDENTIALS_FILE: `${scratch}/no-aws-credentials`, ...extra
})

export interface RunningB3 {
  readonly done: Promise<AsyncB3Result>
  /** Sends a signal to b3 itself (GNU time does not forward signals). */
  readonly signal: (signal: NodeJS.Signals) => void
}

export const startB3 = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): RunningB3 => {
  const child = spawn("/usr/bin/time", ["-f", "MAXRSS %M", b3Bin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (d: Buffer) => { stdout += d.toString() })
  child.stderr.on("data", (d: Buffer) => { stderr += d.toString() })
  const done = new Promise<AsyncB3Result>((resolve) => child.on("close", (code) => {
    const m = /MAXRSS (\d+)\s*$/.exec(stderr)
    resolve({ status: code ?? -1, stdout, stderr: stderr.replace(/(Command exited with non-zero status \d+\n)?MAXRSS \d+\s*$/, ""), maxRssKiB: m ? Number(m[1]) : -1 })
  }))
  const signal = (sig: NodeJS.Signals) => {
    // bin/b3 execs node, so time's only child is b3's node process.
    const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean)
    for (const pid of children) process.kill(Number(pid), sig)
  }
  return { done, signal }
}

export const runB3Async = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Promise<AsyncB3Result> => startB3(args, env).done

/** Problems with a bucket's narinfos: each must point at a NAR object of exactly its FileSize. */
export const danglingNarInfos = async (baseUrl: string, bucket: string): Promise<Array<string>> => {
  const xml = await (await fetch(`${baseUrl}/${bucket}?list-type=2`)).text()
  const keys = [...xml.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]!)
  const problems: Array<string> = []
  for (const key of keys.filter((k) => k.endsWith(".narinfo"))) {
    const narinfo = await (await fetch(`${baseUrl}/${bucket}/${key}`)).text()
    const url = /^URL: (\S+)$/m.exec(narinfo)?.[1]
    const size = /^FileSize: (\d+)$/m.exec(narinfo)?.[1]
    if (!url) { problems.push(`${key}: no URL`); continue }
    const head = await fetch(`${baseUrl}/${bucket}/${url}`, { method: "HEAD" })
    if (head.status !== 200) problems.push(`${key}: ${url} is missing (HTTP ${head.status})`)
    else if (size !== undefined && head.headers.get("content-length") !== size) problems.push(`${key}: ${url} has ${head.headers.get("content-length")} bytes, not ${size}`)
  }
  return problems
}
