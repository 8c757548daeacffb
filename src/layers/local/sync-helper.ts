/**
 * Flushing a whole file system to disk (syncfs(2)), which Node cannot call, through a small Perl
 * helper started on first use and kept: a flush then costs a request, not a process start
 * (starting coreutils' `sync -f` from a store process of ~100 MiB took ~16 ms of its main thread
 * each time, measured in the daemon's profile). The helper calls syncfs itself where it knows the
 * system call's number (x86-64, arm64), else runs `sync -f`; it ends when its stdin closes.
 */
import { Effect, Scope } from "effect"
import { StoreIoError } from "../../services/store-errors.ts"
import { lineHelper } from "./line-helper.ts"

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

export interface SyncHelper {
  readonly sync: SyncFileSystem
  /** Starts the helper now rather than on the first flush (a daemon does before it accepts clients). */
  readonly start: Effect.Effect<void>
}

/** The helper, started on first use and stopped when the scope closes. */
export const makeSyncHelper = (store: string): Effect.Effect<SyncHelper, never, Scope.Scope> => Effect.gen(function*() {
  const helper = lineHelper("the sync helper", "perl", ["-e", script])
  yield* Effect.addFinalizer(() => Effect.sync(helper.end))
  const error = (reason: string) => new StoreIoError({ store, operation: "sync", reason })
  const start = Effect.sync(helper.start)
  return { start, sync: (dir) => Effect.callback<void, StoreIoError>((resume) => {
    if (dir.includes("\n")) return resume(Effect.fail(error(`a directory name with a newline: ${JSON.stringify(dir)}`)))
    helper.send(dir, (reply) => resume(reply === "1" ? Effect.void : Effect.fail(error(reply?.slice(2) ?? helper.failure() ?? "the sync helper stopped"))))
  }) }
})
