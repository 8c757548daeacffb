/**
 * Flushing a whole file system to disk (syncfs(2)), which Node cannot call, through a small Perl
 * helper started on first use and kept: a flush then costs a request, not a process start
 * (starting coreutils' `sync -f` from a store process of ~100 MiB took ~16 ms of its main thread
 * each time, measured in the daemon's profile). The helper calls syncfs itself where it knows the
 * system call's number (x86-64, arm64), else runs `sync -f`; it ends when its stdin closes.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { Effect, Scope } from "effect"
import { StoreIoError } from "../../services/store-errors.ts"

const script = String.raw`
use strict; use warnings; use Config;
$| = 1;
my $nr = $Config{archname} =~ /^x86_64/ ? 306 : $Config{archname} =~ /^aarch64/ ? 267 : undef;
while (my $dir = <STDIN>) {
  chomp $dir;
  my $ok;
  if (!defined $nr) {
    $ok = system("sync", "-f", $dir) == 0 ? "1" : "0 sync -f $dir failed";
  } elsif (opendir(my $dh, $dir)) {
    $ok = syscall($nr, fileno($dh)) == 0 ? "1" : "0 syncfs of $dir: $!";
    closedir $dh;
  } else {
    $ok = "0 cannot open $dir: $!";
  }
  print "$ok\n";
}
`

/** `syncfs` of the file system holding a directory. */
export type SyncFileSystem = (dir: string) => Effect.Effect<void, StoreIoError>

/** The helper, started on first use and stopped when the scope closes. */
export const makeSyncHelper = (store: string): Effect.Effect<SyncFileSystem, never, Scope.Scope> => Effect.gen(function*() {
  let child: ChildProcess | undefined
  let failure: string | undefined
  let buffered = ""
  const waiting: Array<(reply: string) => void> = []
  const error = (reason: string) => new StoreIoError({ store, operation: "sync", reason })

  const start = () => {
    const c = spawn("perl", ["-e", script], { stdio: ["pipe", "pipe", "pipe"] })
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
      for (const resolve of waiting.splice(0)) resolve(`0 ${reason}`)
    }
    c.on("error", (e) => fail(`cannot run perl to flush the file system: ${e.message}`))
    c.on("exit", (code) => fail(stderr.trim() || `the sync helper exited (${code})`))
    c.stdin!.on("error", () => { /* reported through exit */ })
    return c
  }

  yield* Effect.addFinalizer(() => Effect.sync(() => child?.stdin!.end()))

  // replies come in the order of the requests (one line each)
  return (dir) => Effect.callback<void, StoreIoError>((resume) => {
    if (failure !== undefined) return resume(Effect.fail(error(failure)))
    if (dir.includes("\n")) return resume(Effect.fail(error(`a directory name with a newline: ${JSON.stringify(dir)}`)))
    child ??= start()
    waiting.push((reply) => resume(reply === "1" ? Effect.void : Effect.fail(error(reply.slice(2)))))
    child.stdin!.write(dir + "\n")
  })
})
