/**
 * Add a source tree to a store and build a derivation from it in the sandbox.
 *
 *   b3 run examples/build-source.ts --store /tmp/r -- ./my-src
 *
 * The store must be able to build (a local store such as `/tmp/r`, a chroot store with the logical
 * store directory /nix/store). The builder is a static busybox (Debian's busybox-static,
 * /bin/busybox), added to the store as a fixed tree on the way. Prints the output path: a file
 * listing the source's files with their line counts (it names the source, so the source is in
 * its closure).
 */
import { Effect, FileSystem, Path } from "effect"
import { buildDerivations, StorePath, StoreRead, StoreWrite } from "b3"
import { derivation, storePath, str } from "b3/derivation"

const hostBusybox = "/bin/busybox"

/** busybox as a store path with `bin/busybox` and `bin/sh`, as builders expect. */
const addBusybox = Effect.scoped(Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const dir = yield* fs.makeTempDirectoryScoped()
  const bin = path.join(dir, "busybox", "bin")
  yield* fs.makeDirectory(bin, { recursive: true })
  yield* fs.copyFile(hostBusybox, path.join(bin, "busybox"))
  yield* fs.symlink("busybox", path.join(bin, "sh"))
  return yield* (yield* StoreWrite).addPath(path.join(dir, "busybox"))
}))

export default (args: ReadonlyArray<string>) => Effect.gen(function*() {
  const path = yield* Path.Path
  const { storeDir } = yield* StoreRead
  const write = yield* StoreWrite
  const sourceDir = path.resolve(args[0] ?? ".")

  const source = yield* write.addPath(sourceDir)
  yield* Effect.log(`source: ${StorePath.print(source.path, storeDir)}`)
  const busybox = storePath(StorePath.print((yield* addBusybox).path, storeDir))
  const bb = str`${busybox}/bin/busybox`

  const summary = yield* Effect.fromResult(derivation({
    name: `${source.path.name}-summary`,
    system: "x86_64-linux",
    builder: str`${busybox}/bin/sh`,
    src: storePath(StorePath.print(source.path, storeDir)),
    args: ["-c", str`echo "lines per file of $src" > $out && cd $src && ${bb} find . -type f | ${bb} sort | while read -r f; do echo "$f $(${bb} wc -l < "$f")"; done >> $out`]
  }))
  const [result] = yield* buildDerivations([summary])
  return StorePath.print(result!.outputs.out!, storeDir)
})
