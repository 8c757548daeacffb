/**
 * A real OpenSSH server for tests (Debian's openssh-server), as a Scope resource: listening on
 * 127.0.0.1 on a free port, with a throwaway host key and one throwaway client key authorized for
 * the current user. `sshOpts` is what a client needs to reach it (NIX_SSHOPTS for Nix and b3).
 */
import { Effect, type Scope } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { userInfo } from "node:os"
import { join } from "node:path"

export interface RunningSshd {
  readonly port: number
  readonly user: string
  /** The client's private key. */
  readonly key: string
  /** `-p PORT -i KEY -o …`: options for ssh (and NIX_SSHOPTS). */
  readonly sshOpts: string
  readonly log: () => string
}


const freePort = () => Effect.callback<number, Error>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
  server.once("error", (e) => resume(Effect.fail(e)))
})

/** Starts sshd in `dir` (its keys and config live there); stopped when the scope closes. */
export const startSshd = (dir: string): Effect.Effect<RunningSshd, Error, Scope.Scope> => Effect.gen(function*() {
  mkdirSync(dir, { recursive: true })
  mkdirSync("/run/sshd", { recursive: true }) // sshd's privilege separation directory
  const hostKey = join(dir, "host_ed25519")
  const clientKey = join(dir, "client_ed25519")
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey])
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", clientKey])
  const authorized = join(dir, "authorized_keys")
  execFileSync("cp", [`${clientKey}.pub`, authorized])
  const port = yield* freePort()
  const config = join(dir, "sshd_config")
  writeFileSync(config, [
    `Port ${port}`, "ListenAddress 127.0.0.1", `HostKey ${hostKey}`, `AuthorizedKeysFile ${authorized}`,
    "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
    "StrictModes no", `PidFile ${join(dir, "sshd.pid")}`, "PrintMotd no", "AcceptEnv NIX_*", "LogLevel VERBOSE", ""
  ].join("\n"))
  const knownHosts = join(dir, "known_hosts")
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${execFileSync("cat", [`${hostKey}.pub`]).toString().split(" ").slice(0, 2).join(" ")}\n`)
  const sshOpts = `-p ${port} -i ${clientKey} -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR`
  let log = ""
  const child = yield* Effect.acquireRelease(Effect.callback<ReturnType<typeof spawn>, Error>((resume) => {
    const child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] })
    child.stderr!.on("data", (d) => {
      log += d.toString()
      if (log.includes("Server listening on")) resume(Effect.succeed(child))
    })
    child.once("exit", (code) => resume(Effect.fail(new Error(`sshd exited (${code}): ${log}`))))
  }), (child) => Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGTERM")
  }))
  void child
  return { port, user: userInfo().username, key: clientKey, sshOpts, log: () => log }
})
