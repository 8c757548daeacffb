/**
 * Debian's nginx (nginx-light) serving a directory on 127.0.0.1, started by a benchmark as the
 * reference server: sendfile, no access log, two workers (one per core here). `stop` ends it.
 */
import { spawn, spawnSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { request } from "node:http"
import { join } from "node:path"

export interface Nginx {
  readonly port: number
  readonly base: string
  /** The worker processes (for their peak RSS). */
  readonly workers: () => ReadonlyArray<number>
  readonly stop: () => void
}

/** Starts nginx serving `root`, its config, pid file and error log in `work`; resolves once it answers. */
export const startNginx = async (root: string, work: string): Promise<Nginx> => {
  const port = 20000 + Math.floor(Math.random() * 20000)
  writeFileSync(join(work, "nginx.conf"), `
user root root; daemon off; worker_processes 2; pid ${work}/nginx.pid; error_log ${work}/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  types { text/x-nix-narinfo narinfo; application/x-nix-nar nar; }
  server { listen 127.0.0.1:${port}; root ${root}; } }
`)
  const child = spawn("/usr/sbin/nginx", ["-c", join(work, "nginx.conf"), "-e", join(work, "nginx-error.log")], { stdio: "ignore" })
  const failed = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`nginx exited (${code}); see ${work}/nginx-error.log`))))
  const answered = new Promise<void>((resolve) => {
    const poll = () => request(`http://127.0.0.1:${port}/`, (res) => { res.resume(); resolve() }).on("error", () => setTimeout(poll, 50)).end()
    poll()
  })
  await Promise.race([answered, failed])
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    workers: () => spawnSync("pgrep", ["-P", String(child.pid)], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean).map(Number),
    stop: () => { child.kill("SIGQUIT") }
  }
}
