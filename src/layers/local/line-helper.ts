/**
 * A helper process spoken to in lines: one request line on its stdin, one reply line on its
 * stdout, replies in the order of the requests. The local store keeps two, small Perl scripts for
 * what Node cannot do itself (flock: nix-locks.ts; syncfs: sync-helper.ts). Started on first use;
 * if it cannot start or exits, every request waiting and every later one gets the reason.
 */
import { spawn, type ChildProcess } from "node:child_process"

export interface LineHelper {
  /** Sends a request line; `reply` gets the reply line, or `undefined` once the helper has stopped (see `failure`). */
  readonly send: (line: string, reply: (line: string | undefined) => void) => void
  /** Why the helper stopped, if it has. */
  readonly failure: () => string | undefined
  /** Starts it now rather than on first use. */
  readonly start: () => void
  /** Whether it was started (it may have stopped since). */
  readonly started: () => boolean
  /** Closes its stdin: a helper ends at the end of its input. */
  readonly end: () => void
}

/** `name` says what the helper is for, in errors: "the lock helper". */
export const lineHelper = (name: string, command: string, args: ReadonlyArray<string>): LineHelper => {
  let child: ChildProcess | undefined
  let failure: string | undefined
  let buffered = ""
  const waiting: Array<(reply: string | undefined) => void> = []

  const start = () => {
    const c = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] })
    let stderr = ""
    c.stdout!.setEncoding("utf8").on("data", (data: string) => {
      buffered += data
      let end: number
      while ((end = buffered.indexOf("\n")) >= 0) {
        const reply = buffered.slice(0, end)
        buffered = buffered.slice(end + 1)
        waiting.shift()?.(reply)
      }
    })
    c.stderr!.setEncoding("utf8").on("data", (data: string) => { stderr += data })
    const fail = (reason: string) => {
      failure = reason
      for (const resolve of waiting.splice(0)) resolve(undefined)
    }
    c.on("error", (e) => fail(`cannot run ${command} for ${name}: ${e.message}`))
    c.on("exit", (code) => fail(stderr.trim() || `${name} exited (${code})`))
    c.stdin!.on("error", () => { /* reported through exit */ })
    return c
  }

  return {
    send: (line, reply) => {
      if (failure !== undefined) return reply(undefined)
      child ??= start()
      waiting.push(reply)
      child.stdin!.write(line + "\n")
    },
    failure: () => failure,
    start: () => { if (failure === undefined) child ??= start() },
    started: () => child !== undefined,
    end: () => { child?.stdin!.end() }
  }
}
