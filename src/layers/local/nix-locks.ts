/**
 * Nix's garbage-collector protocol, so that b3 and Nix can work on one store at once:
 *
 * - Each process that uses paths lists them as temporary roots in `temproots/<pid>` and holds an
 *   exclusive flock on that file while it lives; a collector that can take the lock knows the owner
 *   is dead and deletes the file.
 * - Adding a root takes a shared, non-blocking flock on `gc.lock`: if that fails a collector is
 *   running, and the root is sent to the collector's socket (`gc-socket/socket`, one path a line,
 *   answered with `1`) before it is appended to the file.
 * - A collector holds `gc.lock` exclusively while it runs and serves that socket.
 *
 * Node has no flock(2), so the locks are held by a small helper process that b3 talks to over its
 * stdin and stdout: a Perl script (perl-base is part of every Debian system). It holds the locks
 * and ends when b3 closes its stdin, or dies with it, which releases them, as a crashed Nix
 * process's locks are.
 */
import { Effect, Scope, Semaphore } from "effect"
import { ownString } from "../../core/own-string.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import { makeGroupCommit } from "./group-commit.ts"
import { lineHelper } from "./line-helper.ts"

const script = String.raw`
use strict; use warnings;
use Fcntl qw(:flock O_RDWR O_CREAT);
use Socket qw(PF_UNIX SOCK_STREAM sockaddr_un);
use Errno qw(ECONNREFUSED ENOENT EINTR);
$| = 1;
my ($roots_file, $gc_lock_file, $gc_socket) = @ARGV;
# two handles on gc.lock: flock on one handle converts its lock, so a shared attempt must never use
# the handle that holds the collector's exclusive lock
my ($roots_fh, $gc_shared_fh, $gc_exclusive_fh, $sock);
sub open_roots {
  while (1) {
    unlink $roots_file;
    sysopen($roots_fh, $roots_file, O_RDWR | O_CREAT, 0600) or die "cannot open $roots_file: $!\n";
    flock($roots_fh, LOCK_EX) or die "cannot lock $roots_file: $!\n";
    # a collector may have deleted the file between our open and our lock: then it is not ours
    last if (stat($roots_fh))[7] == 0 && -e $roots_file && (stat($roots_file))[1] == (stat($roots_fh))[1];
    close $roots_fh;
  }
}
sub open_gc_lock {
  my $fh;
  sysopen($fh, $gc_lock_file, O_RDWR | O_CREAT, 0600) or die "cannot open $gc_lock_file: $!\n";
  return $fh;
}
sub gc_fh { $gc_shared_fh //= open_gc_lock(); return $gc_shared_fh }
sub tell_collector {
  my ($line) = @_;
  for (my $tries = 0; ; $tries++) {
    return 0 if flock(gc_fh(), LOCK_SH | LOCK_NB);
    unless ($sock) {
      socket($sock, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n";
      unless (connect($sock, sockaddr_un($gc_socket))) {
        close $sock; undef $sock;
        # the collector holds the lock but does not listen yet, or just stopped: try again shortly
        select(undef, undef, undef, 0.005);
        next;
      }
    }
    my $ok = 1;
    for my $path (split /\n/, $line) {
      my $reply;
      if (!defined syswrite($sock, "$path\n") || !sysread($sock, $reply, 1) || $reply ne "1") { $ok = 0; last }
    }
    return 1 if $ok;
    close $sock; undef $sock;
  }
}
while (my $line = <STDIN>) {
  chomp $line;
  my ($command, $arg) = split / /, $line, 2;
  if ($command eq "R") {
    # roots: paths separated by tabs
    my @paths = split /\t/, $arg;
    open_roots() unless $roots_fh;
    my $shared = !tell_collector(join("\n", @paths));
    syswrite($roots_fh, join("", map { "$_\0" } @paths)) or die "cannot write $roots_file: $!\n";
    flock(gc_fh(), LOCK_UN) if $shared;
    print "ok\n";
  } elsif ($command eq "L") {
    $gc_exclusive_fh //= open_gc_lock();
    flock($gc_exclusive_fh, LOCK_EX) or die "cannot lock $gc_lock_file: $!\n";
    print "ok\n";
  } elsif ($command eq "U") {
    flock($gc_exclusive_fh, LOCK_UN) if $gc_exclusive_fh;
    print "ok\n";
  } elsif ($command eq "P") {
    my $fh;
    if (!sysopen($fh, $arg, O_RDWR)) { print "gone\n"; next }
    if (flock($fh, LOCK_EX | LOCK_NB)) { unlink $arg; syswrite($fh, "d"); close $fh; print "dead\n" }
    else { close $fh; print "alive\n" }
  } elsif ($command eq "D") {
    close $roots_fh if $roots_fh; undef $roots_fh;
    unlink $roots_file;
    print "ok\n";
  }
}
`

export interface NixLocksPaths {
  /** This process's temporary roots file, `temproots/<pid>`. */
  readonly rootsFile: string
  readonly gcLockFile: string
  readonly gcSocket: string
}

export interface NixLocks {
  /** Registers store paths (printed) as temporary roots of this process, telling a running collector. */
  readonly addTempRoots: (paths: ReadonlyArray<string>) => Effect.Effect<void, StoreIoError>
  /** Holds `gc.lock` exclusively for the scope (waiting for other collectors). */
  readonly gcLock: Effect.Effect<void, StoreIoError, Scope.Scope>
  /** Whether the owner of a temporary roots file is alive; a dead owner's file is deleted. */
  readonly probe: (file: string) => Effect.Effect<"alive" | "dead" | "gone", StoreIoError>
  /** Drops all of this process's temporary roots (its file is removed; the next root starts a new one). */
  readonly dropTempRoots: Effect.Effect<void, StoreIoError>
  /** Starts the helper now rather than on first use (a daemon does, so its first client does not wait for it). */
  readonly start: Effect.Effect<void>
}

/** The helper, started on first use and stopped (its locks released, our roots file removed) when the scope closes. */
export const makeNixLocks = (uri: string, paths: NixLocksPaths): Effect.Effect<NixLocks, never, Scope.Scope> => Effect.gen(function*() {
  const helper = lineHelper("the lock helper", "perl", ["-e", script, paths.rootsFile, paths.gcLockFile, paths.gcSocket])
  const lock = Semaphore.makeUnsafe(1)
  /** The roots in our roots file (added and not dropped since; flat strings: a copy adds 10,000). */
  const added = new Set<string>()
  const error = (operation: string, reason: string) => new StoreIoError({ store: uri, operation, reason })

  /** One request, one reply line (callers hold `lock`, so replies come in order). */
  const send = (operation: string, line: string) => Effect.callback<string, StoreIoError>((resume) => {
    helper.send(line, (reply) => resume(reply === undefined || reply === ""
      ? Effect.fail(error(operation, helper.failure() ?? "the lock helper stopped"))
      : Effect.succeed(reply)))
  })
  const request = (operation: string, line: string) => lock.withPermits(1)(send(operation, line))

  yield* Effect.addFinalizer(() => Effect.suspend(() => helper.started() && helper.failure() === undefined
    ? request("remove temporary roots", "D").pipe(Effect.ignore, Effect.ensuring(Effect.sync(helper.end)))
    : Effect.void))

  // A root stays in our roots file until it is dropped: each is sent once (a build adds its whole
  // input closure, which for a chain of builds is mostly roots added before). Roots asked for while
  // a request is out go together in the next one (adders of many small paths at once would
  // otherwise wait for one round trip to the helper each).
  const sendRoots = makeGroupCommit((batches: ReadonlyArray<ReadonlyArray<string>>) => lock.withPermits(1)(Effect.suspend(() => {
    const fresh = [...new Set(batches.flat())].filter((root) => !added.has(root))
    if (fresh.length === 0) return Effect.void
    return send("add temporary roots", `R ${fresh.join("\t")}`).pipe(Effect.map(() => { for (const root of fresh) added.add(ownString(root)) }))
  })))

  return {
    addTempRoots: (roots) => Effect.suspend(() => {
      const fresh = roots.filter((root) => !added.has(root))
      return fresh.length === 0 ? Effect.void : sendRoots(fresh)
    }),
    gcLock: Effect.acquireRelease(request("take the GC lock", "L"), () => Effect.ignore(request("release the GC lock", "U"))).pipe(Effect.asVoid),
    probe: (file) => Effect.map(request("check temporary roots", `P ${file}`), (reply) => reply as "alive" | "dead" | "gone"),
    start: Effect.sync(helper.start),
    dropTempRoots: lock.withPermits(1)(Effect.suspend(() => {
      added.clear()
      return helper.started() ? Effect.asVoid(send("remove temporary roots", "D")) : Effect.void
    }))
  }
})
